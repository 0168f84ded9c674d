"""Neighbour lists at catalog scale: the index against the brute force, on one core.

    python ops/bench_neighbours.py [--items 1000000] [--queries 2000] [--recall-queries 200] [--seconds 20]
    python ops/bench_neighbours.py --trained 200000          # the Done-when check on a trained model
    python ops/bench_neighbours.py --probes 6 --candidates 32   # other index settings than the engine's

Default (``--items``): an engine holding ``items`` items at d = 64 whose vectors are clustered (2,000
clusters, like a catalog's categories) and whose counts are Zipf(0.9) (the prior's popular head) — built
directly, since training a million items here takes longer than the benchmark may. It prints, in one run:

1. the index build: cold (k-means and every row assigned to its list: what a fresh engine, or one whose catalog
   doubled, pays) and after a checkpoint load (the checkpoint keeps the lists' centroids and each row's list:
   what a daemon pays before its first list refresh after a restart), with recall@10 after the load;
2. lists/s at k = 20 from the index (``most_similar_many``) and from ``exact=True``;
3. recall@10 of the default against ``exact=True`` over ``recall-queries`` random items;
4. the serving side's memory (index, published-vector state, list rows) against the raw vectors;
5. the age of a changed item's list (due → written to a real redis-server) while ``events_rate`` events/s
   are learned (deferred replay, as under load) by the daemon's own steps: take the moved items, mark
   their lists due, refresh within ``neighbours_budget`` every ``neighbours_interval``.

``--trained N``: a model trained on an N-item Zipf stream (clustered sessions) instead; prints 1, 2 and 3.
Single-threaded (faiss, BLAS): run on a shared machine, the figures move with its load.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VECTOR_SIZE = 64


def synthetic_engine(items: int, seed: int = 0):
    """A Trainer whose ``items`` rows hold clustered vectors and Zipf counts (see the module docstring)."""
    from streamer import Trainer
    from streamer.core.sgns import DIRTY_ALL, ITEM_LIVE

    trainer = Trainer(vector_size=VECTOR_SIZE, seed=seed, replay_passes=0)
    table = trainer._items
    table.allocate([f"item{index}" for index in range(items)], 0.0)
    arrays = table.arrays
    random = np.random.default_rng(seed)
    centres = random.normal(0, 0.3, (2000, VECTOR_SIZE)).astype(np.float32)
    cluster = random.integers(0, 2000, items)
    for start in range(0, items, 100_000):
        part = slice(start, min(items, start + 100_000))
        size = part.stop - part.start
        arrays.vectors_in[part] = centres[cluster[part]] + random.normal(0, 0.15, (size, VECTOR_SIZE))
        arrays.vectors_out[part] = 0.5 * centres[cluster[part]] + random.normal(0, 0.15, (size, VECTOR_SIZE))
    counts = np.maximum(1, (1e6 / np.arange(1, items + 1) ** 0.9).astype(np.int64))
    arrays.counts[:items] = random.permutation(counts)
    arrays.recent[:items] = arrays.counts[:items]
    arrays.status[:items] = ITEM_LIVE
    arrays.dirty[:items] = DIRTY_ALL
    trainer._event_count = int(arrays.counts[:items].sum())
    return trainer


def trained_engine(items: int, seed: int = 0):
    """A Trainer trained on ``5 * items`` clicks: Zipf(0.9)-popular items, sessions within one of
    ``items // 100`` clusters (so that the cosine has neighbours to find)."""
    from streamer import Trainer

    random = np.random.default_rng(seed)
    clusters = max(1, items // 100)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity /= popularity.sum()
    members = [np.flatnonzero(np.arange(items) % clusters == cluster) for cluster in range(clusters)]
    weights = [popularity[member] / popularity[member].sum() for member in members]
    cluster_popularity = np.array([popularity[member].sum() for member in members])
    trainer = Trainer(vector_size=VECTOR_SIZE, seed=seed)
    events, ts, session = [], 0.0, 0
    while ts < 5 * items:  # ts counts every click made (``events`` is emptied after each batch learned)
        cluster = int(random.choice(clusters, p=cluster_popularity))
        for item in random.choice(members[cluster], size=int(random.integers(2, 15)), p=weights[cluster]).tolist():
            events.append((f"u{session}", f"item{item}", ts))
            ts += 1.0
        session += 1
        if len(events) >= 200_000:
            trainer.learn(events)
            events = []
    trainer.learn(events)
    return trainer


def timed(action):
    began = time.perf_counter()
    result = action()
    return result, time.perf_counter() - began


def lists_per_second(trainer, queries: list[str], exact: bool, k: int = 20) -> float:
    _, seconds = timed(lambda: trainer.most_similar_many(queries, k, exact=exact))
    return len(queries) / seconds


def recall_at_10(trainer, queries: list[str]) -> float:
    approximate = trainer.most_similar_many(queries, 10)
    exact = trainer.most_similar_many(queries, 10, exact=True)
    return float(np.mean([len({a for a, _ in x} & {e for e, _ in y}) / 10 for x, y in zip(approximate, exact)]))


def serving_memory(trainer) -> dict:
    similar, items = trainer._similar, trainer.item_count
    published = trainer._published
    listed = trainer._listed.rows
    raw = items * VECTOR_SIZE * 4 * 2
    index = similar.index.memory_bytes + similar._indexed.nbytes
    state = published.vector.nbytes + published.published_at.nbytes + published.known.nbytes + published.waiting.nbytes
    return {"items": items, "raw_vector_bytes": raw, "index_bytes": index, "index_to_raw": round(index / raw, 3),
            "published_state_bytes": state, "list_rows_bytes": listed.nbytes,
            "index_lists": similar.index.lists}


def freshness_under_load(trainer, rate: float, seconds: float, budget: float = 0.1, interval: float = 0.5) -> dict:
    """The daemon's steps at ``rate`` events/s against a real redis-server: ages of the lists written."""
    import redis

    from streamer.io.lease import Lease
    from streamer.io.redis_sink import RedisSink
    from streamer.keys import Keys
    from streamer.localstack import LocalStack

    ids = trainer._items.ids
    random = np.random.default_rng(3)
    weights = 1.0 / np.arange(1, len(ids) + 1) ** 0.9
    weights /= weights.sum()
    stack = LocalStack()
    stack.start_redis()
    try:
        client = redis.Redis.from_url(stack.redis_url)
        lease = Lease(client, Keys("bench"), 300.0)
        lease.acquire()
        sink = RedisSink(client, Keys("bench"), lease, user_ttl=0, neighbours_count=20)
        trainer.take_changed(0.02, 30.0, time.time())  # everything is published once before the clock starts
        index, trainings = trainer._similar.index, trainer._similar.index.trainings
        sink.neighbours_due.clear()
        ages, learned, began = [], 0, time.monotonic()
        next_refresh, batch = began + interval, max(1, int(rate / 20))
        while time.monotonic() - began < seconds:
            drawn = random.choice(len(ids), size=batch, p=weights)
            events = [(f"u{n % 500}", ids[row], learned + n) for n, row in enumerate(drawn.tolist())]
            trainer.learn(events, replay=False)
            learned += batch
            sink.add_items(trainer.take_changed(0.02, 30.0, time.time()), None)
            sink.dirty.clear()  # the vectors are not the subject here
            now = time.monotonic()
            if now >= next_refresh:
                next_refresh = now + interval
                ages += sink.refresh_neighbours(trainer, 100_000, budget, 30.0)
            ahead = learned / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
        elapsed = time.monotonic() - began
        lease.release()
        client.close()
    finally:
        stack.stop()
    ordered = sorted(ages) or [float("nan")]
    return {"target_events_per_second": rate, "events_per_second": round(learned / elapsed, 1),
            "lists_written": len(ages), "lists_due_at_end": len(sink.neighbours_due),
            "index_new_lists": index.trainings - trainings, "index_fit_checks": getattr(index, "fit_checks", None),
            "index_updates_since_training": index.updates_since_training,
            "age_p50_seconds": round(ordered[len(ordered) // 2], 3),
            "age_p99_seconds": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3)}


def after_load(trainer, queries: list[str], recall_queries: int) -> dict:
    """The engine saved to a checkpoint file and loaded again: the load, then its index ready (timed apart)."""
    import tempfile

    from streamer import Trainer

    with tempfile.TemporaryDirectory(prefix="bench-neighbours-") as directory:
        path = Path(directory) / "model.ckpt"
        _, save_seconds = timed(lambda: trainer.save(path))
        loaded, load_seconds = timed(lambda: Trainer.load(path))
    with_index_settings(loaded, trainer._similar.index.probes, trainer._similar.index_candidates)
    _, index_seconds = timed(loaded.sync_index)
    result = {"checkpoint_save_seconds": round(save_seconds, 2), "checkpoint_load_seconds": round(load_seconds, 2),
              "index_after_load_seconds": round(index_seconds, 2),
              "index_trainings_after_load": loaded._similar.index.trainings,  # 0: no k-means ran
              "recall_at_10_after_load": round(recall_at_10(loaded, queries[:recall_queries]), 4)}
    return result


def with_index_settings(trainer, probes: int | None, candidates: int | None):
    """The engine with another number of probed lists / index candidates (None: the defaults)."""
    similar = trainer._similar
    if probes:
        similar.index.probes = probes
        if similar.index.lists:  # already built (the index takes ``probes`` when it trains its lists)
            similar.index._index.nprobe = min(probes, similar.index.lists)
    if candidates:
        similar.index_candidates = candidates
    return trainer


def measure(items: int, queries: int, recall_queries: int, rate: float, seconds: float, trained: bool = False,
            probes: int | None = None, candidates: int | None = None) -> dict:
    trainer, build_engine = timed(lambda: (trained_engine if trained else synthetic_engine)(items))
    with_index_settings(trainer, probes, candidates)
    names = [name for name in trainer._items.ids if name is not None]
    random = np.random.default_rng(1)
    chosen = [names[i] for i in random.choice(len(names), queries, replace=False)]
    _, index_seconds = timed(trainer.sync_index)
    result = {"items": trainer.item_count, "vector_size": VECTOR_SIZE, "engine_seconds": round(build_engine, 1),
              "index_build_seconds": round(index_seconds, 2), "probes": trainer._similar.index.probes,
              "index_candidates": trainer._similar.index_candidates}
    result.update(after_load(trainer, chosen, recall_queries))
    trainer.most_similar_many(chosen[:50], 20)  # warm: popular set, caches
    result["index_lists_per_second"] = round(lists_per_second(trainer, chosen, exact=False), 1)
    result["exact_lists_per_second"] = round(lists_per_second(trainer, chosen[:64], exact=True), 2)
    result["speedup"] = round(result["index_lists_per_second"] / result["exact_lists_per_second"], 1)
    result["recall_at_10"] = round(recall_at_10(trainer, chosen[:recall_queries]), 4)
    result["recall_queries"] = recall_queries
    if not trained:
        result["freshness"] = freshness_under_load(trainer, rate, seconds)
        result["memory"] = serving_memory(trainer)  # after publishing: the published-vector state exists
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--trained", type=int, default=0, help="train a model on this many items instead")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--probes", type=int, default=None, help="lists probed per query (default: the engine's)")
    parser.add_argument("--candidates", type=int, default=None, help="index candidates per query (default: the engine's)")
    arguments = parser.parse_args()
    result = measure(arguments.trained or arguments.items, arguments.queries, arguments.recall_queries,
                     arguments.rate, arguments.seconds, trained=bool(arguments.trained), probes=arguments.probes,
                     candidates=arguments.candidates)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
