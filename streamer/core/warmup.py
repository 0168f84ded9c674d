"""Compile the engine's kernels before the first record arrives.

numba compiles a kernel the first time it is called (or loads it from its on-disk cache). On a fresh
install, or in a container whose cache does not survive a restart, that first call takes seconds: the
daemon's first batches and its first catalog upsert would wait for the compiler, and a burst learned
meanwhile would pile up behind it. :func:`warm_up` makes those first calls on a throwaway
:class:`streamer.Trainer` with the same settings (so the same compiled variants), before the daemon
subscribes. The real engine is not touched.
"""

from __future__ import annotations

import time

from streamer.core.settings import TrainerSettings
from streamer.core.trainer import Trainer

__all__ = ["warm_up"]

GROWN_ITEMS = 1_100  # a new ItemTable holds 1,024 rows


def warm_up(settings: TrainerSettings) -> float:
    """Run every compiled path the daemon uses — learning with replay inline and owed, growing the item
    table, paying replay, a catalog upsert and retirement, similarity — on a throwaway engine; returns the
    seconds it took."""
    began = time.perf_counter()
    engine = Trainer(**settings.to_dict())
    # more items than a new item table holds, so it grows (rebuilding the noise tree) as it will in service
    events = [(f"warm-up-user-{index % 5}", f"warm-up-item-{index % GROWN_ITEMS}", float(index))
              for index in range(GROWN_ITEMS + 100)]
    half = len(events) // 2
    engine.learn(events[:half])
    engine.learn(events[half:], replay=False)
    engine.replay(10)
    engine.replay(10, threads=2)  # spare-time replay on several cores (the daemon's replay_threads)
    engine.catalog([{"op": "upsert", "item": "warm-up-new", "attrs": {"warm-up": "yes"}},
                    {"op": "retire", "item": "warm-up-item-0"}])
    engine.most_similar_many(["warm-up-item-1", "warm-up-new"], k=3)
    engine.user_vector("warm-up-user-1")
    return time.perf_counter() - began
