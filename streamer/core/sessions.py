"""Sessions in event time: per-user state slots, their ring of recent items, and idle sweeping.

A user's session ends after ``session_gap`` seconds without events or after ``max_session_length``
events; events up to ``lateness`` seconds older than the user's latest event are accepted in arrival
order, older ones are rejected as ``late``. The ring keeps the last ``window`` item rows of the open
session, most recent first; new items are paired with it as they arrive.
"""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np

__all__ = ["UserArrays", "UserTable", "push_ring", "open_session", "session_weights"]

UserArrays = namedtuple("UserArrays", ["last_ts", "length", "ring", "ring_size"])

EVENT_ACCEPTED = 0
EVENT_LATE = 1


@numba.njit(cache=True, nogil=True)
def open_session(users, user, ts, session_gap, max_session_length, lateness):
    """Advance ``user`` to an event at ``ts``; returns EVENT_LATE or EVENT_ACCEPTED (ring reset on a new session)."""
    length = users.length[user]
    last = users.last_ts[user]
    if length > 0 and ts < last - lateness:
        return EVENT_LATE
    if length == 0 or ts - last > session_gap or length >= max_session_length:
        users.length[user] = 0
        users.ring_size[user] = 0
        users.ring[user, :] = -1
        users.last_ts[user] = ts
    elif ts > last:
        users.last_ts[user] = ts
    users.length[user] += 1
    return EVENT_ACCEPTED


@numba.njit(cache=True, nogil=True)
def push_ring(users, user, row):
    """Put ``row`` at the front of the user's ring (most recent first)."""
    ring = users.ring[user]
    for position in range(ring.shape[0] - 1, 0, -1):
        ring[position] = ring[position - 1]
    ring[0] = row
    if users.ring_size[user] < ring.shape[0]:
        users.ring_size[user] += 1


def session_weights(count: int, decay: float) -> np.ndarray:
    """Weights of the ring positions for a user's interest vector: ``decay ** age``, summing to 1."""
    weights = decay ** np.arange(count, dtype=np.float64)
    return weights / weights.sum()


class UserTable:
    """User id -> state slot, with slots recycled once a user's session can no longer continue."""

    def __init__(self, window: int, capacity: int = 1024):
        self.window = window
        self.slots: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.free: list[int] = []
        self.arrays = self._allocate(capacity)

    def _allocate(self, capacity: int) -> UserArrays:
        # length -1 marks a free slot
        return UserArrays(
            np.zeros(capacity, np.float64), np.full(capacity, -1, np.int64),
            np.full((capacity, self.window), -1, np.int32), np.zeros(capacity, np.int32),
        )

    def slot(self, user: str) -> int:
        """The slot of ``user``, allocating one (length 0 = no open session) if needed."""
        slot = self.slots.get(user)
        if slot is not None:
            return slot
        if self.free:
            slot = self.free.pop()
            self.ids[slot] = user
        else:
            slot = len(self.ids)
            self.ids.append(user)
            if slot >= self.arrays.last_ts.shape[0]:
                self._grow()
        arrays = self.arrays
        arrays.last_ts[slot], arrays.length[slot], arrays.ring_size[slot] = 0.0, 0, 0
        arrays.ring[slot, :] = -1
        self.slots[user] = slot
        return slot

    def _grow(self) -> None:
        old = self.arrays
        new = self._allocate(2 * old.last_ts.shape[0])
        for source, target in zip(old, new):
            target[: source.shape[0]] = source
        self.arrays = new

    def sweep(self, before_ts: float) -> int:
        """Free the slots of users whose latest event is older than ``before_ts``; returns how many."""
        count = len(self.ids)
        arrays = self.arrays
        stale = np.flatnonzero((arrays.length[:count] >= 0) & (arrays.last_ts[:count] < before_ts))
        for slot in stale.tolist():
            del self.slots[self.ids[slot]]
            self.ids[slot] = None
            self.free.append(slot)
        arrays.length[stale] = -1
        return int(stale.size)

    def forget_rows(self, rows: np.ndarray) -> None:
        """Remove released item rows from every ring (their slots may be reused by other items)."""
        ring = self.arrays.ring
        ring[np.isin(ring, rows)] = -1

    def open_count(self, watermark: float, session_gap: float) -> int:
        """Users whose session is still open at event time ``watermark``."""
        count = len(self.ids)
        arrays = self.arrays
        return int(np.count_nonzero((arrays.length[:count] > 0) & (arrays.last_ts[:count] >= watermark - session_gap)))
