"""Deferred replay: ``learn(events, replay=False)`` owes the replay draws, ``replay()`` pays them later.

The inline replay trains ``replay_passes`` draws from the replay buffer per pair learned. A stream under
load can skip them and owe them instead (:class:`ReplayDebt`); the daemon pays in spare time with
:func:`draw_replay`. The debt is capped at ``replay_passes * replay_buffer`` draws: older debt would only
replay the same buffer again.

>>> debt = ReplayDebt(passes=2, buffer=10)
>>> debt.accrue(3), debt.accrue(100), debt.pay(5), debt.pay(None), debt.owed
(6, 20, 5, 15, 0)
"""

from __future__ import annotations

import numpy as np

from streamer.core.learning import replay_pairs
from streamer.core.parallel import replay_parallel

__all__ = ["ReplayDebt", "draw_replay"]


class ReplayDebt:
    """Replay draws owed and not yet paid; ``accrue(pairs)`` after a deferred learn, ``pay(n)`` to draw."""

    def __init__(self, passes: int, buffer: int, owed: int = 0):
        self.passes = passes
        self.limit = passes * buffer
        self.owed = owed

    def accrue(self, pairs: int) -> int:
        """Owe ``passes`` draws per pair learned without its replay (up to :attr:`limit`); the new debt."""
        self.owed = min(self.owed + pairs * self.passes, self.limit)
        return self.owed

    def pay(self, max_pairs: int | None) -> int:
        """The draws to make now: ``max_pairs`` (None = the whole debt); they are taken off the debt."""
        draws = self.owed if max_pairs is None else max(0, int(max_pairs))
        self.owed = max(0, self.owed - draws)
        return draws


def draw_replay(item_arrays, replay, hyper, rng, work, workers: int, vector_size: int, negative: int,
                count: int) -> int:
    """Train ``count`` pairs drawn from the replay buffer (in parallel when ``work`` is given); pairs trained."""
    if count <= 0:
        return 0
    if work is not None:
        return replay_parallel(item_arrays, replay, hyper, rng, work, workers, int(count))
    gradient = np.zeros(vector_size, np.float32)
    negatives = np.empty(negative, np.int64)
    return int(replay_pairs(item_arrays, replay, hyper, int(count), rng, 0, gradient, negatives, None))
