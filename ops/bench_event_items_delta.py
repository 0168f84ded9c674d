"""What a checkpoint segment costs when the catalog was learned from events, not announced.

Issue 13's black box in process, without broker or Redis: ``--items`` items learned from events (sessions of five
new items, each item seen once), a base checkpoint, then ``--events`` events over ``--hot`` of them and a
segment. Items learned from events have a noise weight, so every event's negatives (``negative`` per event) touch
rows all over the catalog, and an exact segment must carry their output side. Prints the rows the batch changed
(whole and output-only), the base and segment bytes and their ratio. ``--replay-passes 0`` is the issue's
"replay off"; the default is the engine's.

    python ops/bench_event_items_delta.py --replay-passes 0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.core.sgns import DIRTY_OUTPUT, DIRTY_STATE  # noqa: E402
from streamer.core.trainer import Trainer  # noqa: E402
from streamer.io.manifest import Manifest  # noqa: E402
from streamer.io.state_store import CheckpointStore  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300_000, help="items learned from events first (300,000)")
    parser.add_argument("--events", type=int, default=5_000, help="events of the batch (5,000)")
    parser.add_argument("--hot", type=int, default=1_000, help="items the batch's events are over (1,000)")
    parser.add_argument("--replay-passes", type=int, default=None, help="the engine's replay_passes (its default)")
    options = parser.parse_args(argv)
    knobs = {} if options.replay_passes is None else {"replay_passes": options.replay_passes}
    engine = Trainer(seed=1, **knobs)
    began = time.monotonic()
    engine.learn([(f"user{index // 5}", f"item{index}", float(index)) for index in range(options.items)],
                 replay=False)
    print(f"learned {options.items:,} items from events in {time.monotonic() - began:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="streamer-delta-") as directory:
        store = CheckpointStore(directory)
        manifest = store.save(engine, Manifest(), {("events", 0): options.items}, {})
        base = sum(path.stat().st_size for path in Path(directory).glob("base-*"))
        hot = np.random.default_rng(1).integers(0, options.hot, options.events)
        engine.learn([(f"hot{index % options.hot}", f"item{int(hot[index])}", options.items + float(index))
                      for index in range(options.events)], replay=False)
        dirty = engine._items.arrays.dirty[:engine.item_count]
        whole = int(np.count_nonzero(dirty & DIRTY_STATE))
        output = int(np.count_nonzero((dirty & (DIRTY_STATE | DIRTY_OUTPUT)) == DIRTY_OUTPUT))
        store.save(engine, manifest, {("events", 0): options.items + options.events}, {})
        segment = sum(path.stat().st_size for path in Path(directory).glob("delta-*"))
        store.close()
    print(f"replay_passes {engine.settings.replay_passes}, negative {engine.settings.negative}: the batch changed "
          f"{whole:,} whole rows and {output:,} output-only rows")
    print(f"base {base:,} B, segment {segment:,} B: ratio {segment / base:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
