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

__all__ = ["UserArrays", "UserTable", "push_ring", "open_session", "session_weights", "sweep_users", "sweeps_due"]

UserArrays = namedtuple("UserArrays", ["last_ts", "length", "ring", "ring_size"])

EVENT_ACCEPTED = 0
EVENT_LATE = 1
FREE = -1  # ``length`` of a free slot
SWEPT = -2  # ``length`` of a slot closed by a sweep in compiled code, freed by ``collect_swept`` afterwards


@numba.njit(cache=True, nogil=True)
def open_session(users, user, ts, session_gap, max_session_length, lateness):
    """Advance ``user`` to an event at ``ts``; returns EVENT_LATE or EVENT_ACCEPTED (ring reset on a new session)."""
    length = users.length[user]  # 0: new slot, SWEPT: idle, closed by a sweep (a new session either way)
    last = users.last_ts[user]
    if length > 0 and ts < last - lateness:
        return EVENT_LATE
    if length <= 0 or ts - last > session_gap or length >= max_session_length:
        users.length[user] = 0
        users.ring_size[user] = 0
        ring = users.ring
        for position in range(ring.shape[1]):
            ring[user, position] = -1
        users.last_ts[user] = ts
    elif ts > last:
        users.last_ts[user] = ts
    users.length[user] += 1
    return EVENT_ACCEPTED


@numba.njit(cache=True, nogil=True)
def sweep_users(users, before_ts):
    """Mark the slots of users whose latest event is older than ``before_ts`` as SWEPT (their sessions are
    over); :meth:`UserTable.collect_swept` frees the ones still swept at the end of the compiled call."""
    length, last = users.length, users.last_ts
    for slot in range(length.shape[0]):
        if length[slot] >= 0 and last[slot] < before_ts:
            length[slot] = SWEPT


@numba.njit(cache=True, nogil=True)
def sweeps_due(users, sweep_at, sweep_before, done, event):
    """Run the sweeps scheduled before ``event`` (``sweep_at`` ascending) from number ``done`` on; returns
    how many are done."""
    while done < sweep_at.shape[0] and sweep_at[done] <= event:
        sweep_users(users, sweep_before[done])
        done += 1
    return done


@numba.njit(cache=True, nogil=True)
def push_ring(users, user, row):
    """Put ``row`` at the front of the user's ring (most recent first)."""
    ring = users.ring
    for position in range(ring.shape[1] - 1, 0, -1):
        ring[user, position] = ring[user, position - 1]
    ring[user, 0] = row
    if users.ring_size[user] < ring.shape[1]:
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
        self.forget_changes()

    def forget_changes(self) -> None:
        """Start a new delta: the slots written from now on are collected in ``changed`` (arrays of slots)."""
        self.changed: list[np.ndarray] = []

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

    def slots_for(self, users: list[str]) -> np.ndarray:
        """The slots of ``users`` (allocated in order of first appearance where needed), as int32."""
        get = self.slots.get
        found = list(map(get, users))
        if None in found:
            for user in dict.fromkeys(user for user, known in zip(users, found) if known is None):
                self.slot(user)
            found = list(map(get, users))
        slots = np.array(found, np.int32)
        self.changed.append(slots)
        return slots

    def _grow(self) -> None:
        old = self.arrays
        new = self._allocate(2 * old.last_ts.shape[0])
        for source, target in zip(old, new):
            target[: source.shape[0]] = source
        self.arrays = new

    def sweep(self, before_ts: float) -> int:
        """Free the slots of users whose latest event is older than ``before_ts``; returns how many."""
        sweep_users(self.arrays, before_ts)
        return self.collect_swept()

    def collect_swept(self) -> int:
        """Free the slots a compiled sweep marked SWEPT and no later event reopened; returns how many."""
        count = len(self.ids)
        swept = np.flatnonzero(self.arrays.length[:count] == SWEPT)
        for slot in swept.tolist():
            del self.slots[self.ids[slot]]
            self.ids[slot] = None
            self.free.append(slot)
        self.arrays.length[swept] = FREE
        self.changed.append(swept)
        return int(swept.size)

    def forget_rows(self, rows: np.ndarray) -> None:
        """Remove released item rows from every ring (their slots may be reused by other items)."""
        ring = self.arrays.ring
        hit = np.isin(ring, rows)
        ring[hit] = -1
        self.changed.append(np.flatnonzero(hit.any(axis=1)))

    def open_count(self, watermark: float, session_gap: float) -> int:
        """Users whose session is still open at event time ``watermark``."""
        count = len(self.ids)
        arrays = self.arrays
        return int(np.count_nonzero((arrays.length[:count] > 0) & (arrays.last_ts[:count] >= watermark - session_gap)))
