"""Synthetic event streams with planted structure for the engine tests."""

from __future__ import annotations

import numpy as np


def clustered_events(clusters: int = 5, items_per_cluster: int = 8, sessions: int = 400, length: int = 6,
                     seed: int = 0, start: float = 0.0) -> list[tuple[str, str, float]]:
    """Sessions whose items all come from one cluster; item ``c<k>_i<j>`` belongs to cluster k."""
    random = np.random.default_rng(seed)
    events = []
    ts = start
    for session in range(sessions):
        cluster = int(random.integers(clusters))
        for _ in range(length):
            item = int(random.integers(items_per_cluster))
            events.append((f"user{session % 50}", f"c{cluster}_i{item}", ts))
            ts += 5.0
        ts += 4000.0  # gap > 30 min: the next session of the same user is a new one
    return events


def cluster_of(item: str) -> str:
    return item.split("_")[0]
