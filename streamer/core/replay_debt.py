"""Deferred replay: ``learn(events, replay=False)`` owes the replay draws, ``replay()`` pays them later.

The inline replay trains ``replay_passes`` draws from the replay buffer (the last ``replay_buffer`` pairs)
per pair learned, so every pair is replayed about ``replay_passes`` times while it is recent. A stream
under load skips them and owes them instead (:class:`ReplayDebt`); the daemon pays in spare time with
:func:`draw_replay`. A backlog can be far longer than the buffer, so the pairs learned while owing are
also kept in a backlog log (a uniform reservoir sample of at most ``LOG_FACTOR * replay_buffer`` pairs)
and the debt is drawn from it: after a burst every pair of the burst gets its replays, as inline, not
only the last buffer's (drawn uniformly over the whole backlog: measured closer to inline replay than
draws that follow the learning order). The debt is capped at ``replay_passes`` draws per logged pair; the log is saved
in checkpoints with the debt.

Owed draws take their negatives from an alias table of the noise distribution (O(1) a negative instead of a
Fenwick descent: :func:`streamer.core.noise.alias_build`). Replay does not count, so while the daemon only
pays, the distribution stands still; the table is rebuilt when rows were released since it was built (a
free or reused row must not be drawn with its old weight) or the events counted grew by ``ALIAS_DRIFT``
(new items and moved counts reach it by then), and dropped when the debt is paid.

>>> debt = ReplayDebt(passes=2, buffer=10)
>>> debt.accrue(3), debt.accrue(1000), debt.pay(5), debt.pay(None), debt.owed
(6, 1280, 5, 1275, 0)
"""

from __future__ import annotations

import numpy as np

from streamer.core.learning import replay_pairs
from streamer.core.noise import alias_build
from streamer.core.parallel import replay_threads
from streamer.core.sgns import pair_scratch

__all__ = ["ALIAS_DRIFT", "LOG_FACTOR", "ReplayDebt", "draw_replay"]

LOG_FACTOR = 64  # the backlog log keeps up to this many replay buffers of pairs (8 bytes each)
ALIAS_DRIFT = 0.01  # the alias table is rebuilt once the events counted grew by this share since its build


class ReplayDebt:
    """Replay draws owed and not yet paid; ``accrue(pairs)`` after a deferred learn, ``pay(n)`` to draw;
    ``record(pairs)`` keeps the pairs learned while owing (the backlog log the debt is drawn from)."""

    def __init__(self, passes: int, buffer: int, owed: int = 0, seed: int = 0):
        self.passes = passes
        self.log_capacity = LOG_FACTOR * buffer
        self.limit = passes * self.log_capacity
        self.owed = owed
        self._seed = seed
        self.version = 0  # changes with the backlog log (a delta rewrites the log only when it changed)
        self.clear_log()

    def clear_log(self) -> None:
        self._log, self._fill, self._seen = np.empty((0, 2), np.int32), 0, 0
        self.version += 1
        self._table, self._built = None, (0, -1)

    def noise_table(self, weights: np.ndarray, counted: int, releases: int) -> np.ndarray:
        """The alias table owed draws take negatives from: the one built from ``weights`` earlier, unless rows
        were released since (``releases``, the item table's count, changed) or ``counted`` (events counted so
        far) grew by more than ``ALIAS_DRIFT`` since; then it is built again from ``weights`` now."""
        built_counted, built_releases = self._built
        if self._table is None or releases != built_releases or counted - built_counted > ALIAS_DRIFT * built_counted:
            self._table, self._built = alias_build(weights), (counted, releases)
        return self._table

    def log(self) -> np.ndarray | None:
        """All logged pairs (rows ``(first, second)``), or None when the log is empty."""
        return self._log[:self._fill] if self._fill else None

    def log_state(self) -> tuple[np.ndarray, dict]:
        """The backlog log and what restores its sampling exactly (for checkpoints)."""
        return self._log[:self._fill].copy(), {"seen": self._seen}

    def restore_log(self, pairs: np.ndarray, state: dict) -> None:
        self.clear_log()
        self._log, self._fill = np.array(pairs, np.int32).reshape(-1, 2), len(pairs)
        self._seen = int(state["seen"])

    def record(self, pairs: np.ndarray) -> None:
        """Log ``pairs``; beyond :attr:`log_capacity` each new pair replaces a random one with probability
        capacity / pairs seen (reservoir sampling: the log stays a uniform sample of the backlog)."""
        count = len(pairs)
        room = min(count, self.log_capacity - self._fill)
        if room > 0:
            if self._fill + room > len(self._log):
                grown = np.empty((min(self.log_capacity, max(2 * len(self._log), self._fill + room)), 2), np.int32)
                grown[:self._fill] = self._log[:self._fill]
                self._log = grown
            self._log[self._fill:self._fill + room] = pairs[:room]
            self._fill += room
        if room < count:  # seeded by the pairs seen so far: a checkpoint needs no generator state
            random = np.random.default_rng([self._seed, self._seen])
            seen = self._seen + room + np.arange(count - room)
            kept = random.random(count - room) < self.log_capacity / (seen + 1.0)
            slots = random.integers(0, self.log_capacity, int(kept.sum()))
            self._log[slots] = pairs[room:][kept]
        self._seen += count
        self.version += 1

    def accrue(self, pairs: int) -> int:
        """Owe ``passes`` draws per pair learned without its replay (up to :attr:`limit`); the new debt."""
        self.owed = min(self.owed + pairs * self.passes, self.limit)
        return self.owed

    def pay(self, max_pairs: int | None) -> int:
        """The draws to make now: ``max_pairs`` (None = the whole debt); they are taken off the debt."""
        draws = self.owed if max_pairs is None else max(0, int(max_pairs))
        self.owed = max(0, self.owed - draws)
        return draws


def draw_replay(item_arrays, replay, hyper, rng, threads: int, vector_size: int, negative: int, count: int,
                table: np.ndarray | None = None) -> int:
    """Train ``count`` pairs drawn from the replay buffer (on ``threads`` threads unless 1; 0 = every core numba
    uses), negatives from ``table`` (an alias table) or else the noise tree; pairs trained. One thread is the
    deterministic path (the same draws from the same state)."""
    if count <= 0:
        return 0
    if threads != 1:
        return replay_threads(item_arrays, replay, hyper, rng, threads, int(count), table=table)
    gradient = pair_scratch(vector_size, negative)
    negatives = np.empty(negative, np.int64)
    return int(replay_pairs(item_arrays, replay, hyper, int(count), rng, 0, gradient, negatives, None, table))
