"""Model state at catalog scale: a synthetic stream whose catalog grows to N items (vector_size 64).

Per size, in a child process of its own (so RSS is that size's alone):

1. grow: catalog upserts in steps of ``STEP`` new items, each step followed by events (sessions of 5: two of
   the newest items, three Zipf-popular ones), until N items are held;
2. (measured last, after 5: the new items stay) learning events/s at N over the items held, and on a stream that adds ``--new-items`` new items (two events
   of each session of five are brand-new items): "adding 1M new items costs < 10% of learning throughput".
   The two streams alternate in blocks of ``BLOCK`` events, so a change of the machine's load hits both;
3. checkpoints at 10,000 events/s: a base, then ``ROUNDS`` rounds of 300,000 events (30 s at 10,000 events/s,
   the default ``--checkpoint-interval``) each followed by a checkpoint as the daemon takes it: the first step
   (``CheckpointStore.prepare``: list the changed rows), events learned at 10,000 events/s while the rows are
   copied on another thread, then ``CheckpointStore.begin`` (the rest of the delta). Bytes, seconds of the
   loop's time (the two steps) and until durable (the background write, waited for);
4. upsert cost: catalog upserts into a category of N / 100 members (``ItemTable.attribute_neighbours``);
5. memory: RSS, and the bytes of each structure (vectors, accumulators, per-row scalars, id maps, sessions,
   replay, attributes, the neighbour index);
6. restore seconds: the model is dropped and ``CheckpointStore.load`` reads base + segments.

    python ops/bench_scale.py [--sizes 1000000,10000000] [--events 2000000] [--new-items 1000000]

Events are learned with the engine defaults except ``replay_passes=0`` (the daemon defers replay to spare time).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEP = 50_000  # new catalog items per growth step
ROUNDS = 3  # checkpoints measured
EVENTS_PER_CHECKPOINT = 300_000  # 30 s at 10,000 events/s
RATE = 10_000  # events/s learned while a checkpoint's rows are copied
BLOCK = 125_000  # events per block of the learning-rate comparison
KNOBS = dict(vector_size=64, seed=1, replay_passes=0)


def sessions(random, held: int, newest: tuple[int, int] | None, count: int, start_ts: float,
             new_from: int | None = None, new_share: int = 1) -> list[tuple[str, str, float]]:
    """``count`` events in sessions of 5 over items ``item0..item{held-1}``: Zipf-popular ones, plus two of the
    ``newest`` range per session when given; ``new_from``: ``new_share`` events of each five are brand-new items
    numbered from there."""
    popular = np.minimum(random.zipf(1.3, count), held) - 1
    items = popular.astype(np.int64)
    if newest is not None:
        low, high = newest
        fresh = random.integers(low, high, count)
        mask = (np.arange(count) % 5) < 2
        items[mask] = fresh[mask]
    names = [f"item{item}" for item in items.tolist()]
    if new_from is not None:
        positions = [position for position in range(count) if position % 5 >= 5 - new_share]
        for number, position in enumerate(positions):
            names[position] = f"item{new_from + number}"
    return [(f"user{(start_ts + index) // 5 % 100_000:.0f}", name, start_ts + index * 0.01)
            for index, name in enumerate(names)]


def grow(trainer, size: int, events: int, random) -> dict:
    """Upserts and events until ``size`` items; returns the time spent on each and the last timestamp."""
    steps = max(1, size // STEP)
    per_step = max(5, events // steps)
    upsert_seconds = learn_seconds = 0.0
    ts, held = 0.0, 0
    while held < size:
        count = min(STEP, size - held)
        updates = [{"op": "upsert", "item": f"item{held + index}"} for index in range(count)]
        began = time.perf_counter()
        trainer.catalog(updates)
        upsert_seconds += time.perf_counter() - began
        batch = sessions(random, held + count, (held, held + count), per_step, ts)
        began = time.perf_counter()
        trainer.learn(batch, replay=False)
        learn_seconds += time.perf_counter() - began
        held, ts = held + count, ts + per_step * 0.01 + 1.0
    return {"upserts_per_second": size / upsert_seconds, "grow_events": per_step * steps,
            "grow_events_per_second": per_step * steps / learn_seconds, "ts": ts}


def learning_rates(trainer, size: int, random, ts: float, new_items: int) -> tuple[dict, float]:
    """Events/s on known items vs on a stream adding ``new_items`` new ones (2 of 5 events), in alternating blocks."""
    blocks = max(1, round(new_items / (BLOCK * 2 / 5)))
    seconds = {"known": [], "new": []}
    added = 0
    for _ in range(blocks):
        for kind in ("known", "new"):
            batch = (sessions(random, size, None, BLOCK, ts) if kind == "known"
                     else sessions(random, size, None, BLOCK, ts, new_from=size + 10_000_000 + added, new_share=2))
            added += BLOCK * 2 // 5 if kind == "new" else 0
            began = time.perf_counter()
            trainer.learn(batch, replay=False)
            seconds[kind].append(time.perf_counter() - began)
            ts += BLOCK * 0.01 + 1.0
    known, new = BLOCK * blocks / sum(seconds["known"]), BLOCK * blocks / sum(seconds["new"])
    ratios = [known_seconds / new_seconds for known_seconds, new_seconds in zip(seconds["known"], seconds["new"])]
    return ({"learning_events_per_second": known, "growing_events_per_second": new, "new_items_in_growing": added,
             "growing_slowdown": 1.0 - new / known, "growing_slowdown_median_block": 1.0 - float(np.median(ratios)),
             "blocks": blocks, "block_events": BLOCK}, ts)


def checkpoints(trainer, size: int, random, ts: float, directory: Path) -> tuple[dict, float]:
    from streamer.io.checkpoint import CheckpointStore, Manifest

    store = CheckpointStore(directory, compact_ratio=1.0)
    began = time.perf_counter()
    manifest = store.save(trainer, Manifest(), {("events", 0): 0}, {})
    base_seconds, base_bytes = time.perf_counter() - began, manifest.chain[-1].bytes
    rounds = []
    for number in range(ROUNDS):
        batch = sessions(random, size, None, EVENTS_PER_CHECKPOINT, ts, new_from=size + 20_000_000 + number * 10_000)
        trainer.learn(batch, replay=False)
        ts += EVENTS_PER_CHECKPOINT * 0.01 + 1.0
        began = time.perf_counter()
        store.prepare(trainer, manifest)  # the loop's first step: list the changed rows (copied on a thread)
        first = time.perf_counter() - began
        window, ts = _learn_while_copying(trainer, store, size, random, ts)
        began_rest = time.perf_counter()
        save = store.begin(trainer, manifest, {("events", 0): number + 1}, {})  # the loop's second step: the rest
        rest = time.perf_counter() - began_rest
        manifest = save.finish()  # the background write, waited for here
        rounds.append({"loop_seconds": first + rest, "first_step_seconds": first, "rest_seconds": rest,
                       "copy_window_seconds": window["seconds"], "copy_window_events": window["events"],
                       "seconds": time.perf_counter() - began, "bytes": manifest.chain[-1].bytes,
                       "file": manifest.chain[-1].name})
    began = time.perf_counter()
    store.wait_for_compaction()
    waited = time.perf_counter() - began
    return ({"base_bytes": base_bytes, "base_seconds": base_seconds, "rounds": rounds,
             "checkpoint_seconds": float(np.mean([round_["seconds"] for round_ in rounds])),
             "checkpoint_loop_seconds": float(np.mean([round_["loop_seconds"] for round_ in rounds])),
             "checkpoint_bytes": float(np.mean([round_["bytes"] for round_ in rounds])),
             "compaction_wait_after_last_seconds": waited}, ts)


def _learn_while_copying(trainer, store, size: int, random, ts: float) -> tuple[dict, float]:
    """Learn at ``RATE`` events/s (chunks of 1,000, paced) until the first step's rows are copied."""
    began, events = time.perf_counter(), 0
    while not store.prepared():
        trainer.learn(sessions(random, size, None, 1000, ts), replay=False)
        events, ts = events + 1000, ts + 11.0
        time.sleep(max(0.0, began + events / RATE - time.perf_counter()))
    return {"seconds": time.perf_counter() - began, "events": events}, ts


def upsert_cost(trainer, size: int) -> dict:
    """µs per upsert of a new item into a category of ``size // 100`` members."""
    items = trainer._items
    members = max(1, size // 100)
    for index in range(members):
        items.set_attributes(f"item{index}", {"category": "big"})
    updates = [{"op": "upsert", "item": f"fresh{index}", "attrs": {"category": "big"}} for index in range(50)]
    began = time.perf_counter()
    trainer.catalog(updates)
    return {"category_members": members, "upsert_microseconds": (time.perf_counter() - began) / len(updates) * 1e6}


def _strings(values) -> int:
    return sum(sys.getsizeof(value) for value in values if value is not None)


def memory_breakdown(trainer) -> dict:
    """Bytes per structure (Python objects counted with their strings; shared strings counted once, in ``ids``)."""
    items, users, arrays = trainer._items, trainer._users, trainer._items.arrays
    part = {"vectors": arrays.vectors_in.nbytes + arrays.vectors_out.nbytes,
            "accumulators": arrays.accum_in.nbytes + arrays.accum_out.nbytes,
            "row_scalars_and_noise_tree": sum(getattr(arrays, name).nbytes for name in arrays._fields
                                              if name not in ("vectors_in", "vectors_out", "accum_in", "accum_out")),
            "id_maps": sys.getsizeof(items.rows) + sys.getsizeof(items.ids) + _strings(items.ids)
            + sum(sys.getsizeof(row) for row in items.rows.values() if row > 256),  # the row ints (not cached)
            "sessions": sum(value.nbytes for value in users.arrays) + sys.getsizeof(users.slots)
            + sys.getsizeof(users.ids) + _strings(users.ids),
            "replay": trainer._replay.pairs.nbytes + trainer._debt.log_state()[0].nbytes,
            "attributes": sys.getsizeof(items.attributes) + sum(sys.getsizeof(value) for value in items.attributes.values())
            + sys.getsizeof(items.attribute_index)}
    similar = getattr(trainer, "_similar", None)
    index = getattr(similar, "index", None)
    if index is not None and hasattr(index, "memory_bytes"):
        part["neighbour_index"] = int(index.memory_bytes)  # a property
    part["capacity_rows"] = int(arrays.counts.shape[0])
    return part


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def measure_size(size: int, events: int, directory: Path, new_items: int) -> dict:
    from streamer import Trainer
    from streamer.io.checkpoint import CheckpointStore

    random = np.random.default_rng(size)
    trainer = Trainer(**KNOBS)
    began, processor = time.perf_counter(), time.process_time()
    result = {"items": size, "vector_size": KNOBS["vector_size"], **grow(trainer, size, events, random)}
    result["grow_seconds"], result["grow_cpu_seconds"] = time.perf_counter() - began, time.process_time() - processor
    result["checkpoint"], ts = checkpoints(trainer, size, random, result.pop("ts"), directory)
    result.update(upsert_cost(trainer, size))
    result["memory_bytes"] = memory_breakdown(trainer)
    result["rss_bytes"], result["peak_rss_bytes"] = _rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rates, ts = learning_rates(trainer, size, random, ts, new_items)  # last: the new items stay in the model
    result.update(rates)
    result["peak_rss_after_new_items_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del trainer
    gc.collect()
    began, processor = time.perf_counter(), time.process_time()
    restored, manifest = CheckpointStore(directory).load(Trainer.load)
    result["restore_seconds"] = time.perf_counter() - began
    result["restore_cpu_seconds"] = time.process_time() - processor  # wall - CPU: waiting for the disk
    result["restore_chain_files"] = len(manifest.chain)
    result["restored_items"] = restored.item_count
    return result


def run_child(size: int, events: int, new_items: int | None = None) -> dict:
    """``measure_size`` in a child process (its own RSS), its checkpoint directory removed afterwards."""
    new_items = min(size, 1_000_000) if new_items is None else new_items
    directory = Path(tempfile.mkdtemp(prefix="streamer-bench-scale-"))
    try:
        child = subprocess.run([sys.executable, __file__, "--child", str(size), "--events", str(events), "--new-items", str(new_items),
                                "--directory", str(directory)], capture_output=True, text=True)
        if child.returncode != 0:
            tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"bench_scale child for {size:,} items: exit code {child.returncode}: {tail}")
        return json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--events", type=int, default=2_000_000, help="events learned while the catalog grows")
    parser.add_argument("--new-items", type=int, default=None,
                        help="new items the growing stream adds (learning-rate comparison; default min(size, 1M))")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--directory", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_size(args.child, args.events, Path(args.directory), args.new_items or 0)), flush=True)
        return 0
    for size in (int(text) for text in args.sizes.split(",")):
        print(json.dumps(run_child(size, args.events, args.new_items)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
