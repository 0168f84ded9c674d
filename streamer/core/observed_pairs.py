"""Observed co-occurrence in ``most_similar``: a bounded table of session pairs, a candidate source and a score
term measured on the stream.

SGNS's dot product knows how often two items occur together only once both have been trained on enough pairs;
exact co-occurrence counts (the ``cooc`` baseline) know a pair from its first observation, which is why
co-occurrence ranks a rare item's next item first where the model still guesses. The engine keeps those counts
too, bounded, and lets them into the one ranking path (candidate sources -> full score -> top k):

- the table: per item row up to ``cooccurrence_partners`` partner rows with a count (the item arrays
  ``partners``, partner row + 1 with 0 for an empty slot, and ``partner_counts``: checkpoints and deltas carry
  them). Each learned event pairs its item with the up to ``window`` previous items of its session (per user, a
  new session after ``session_gap``; the same item, late events and immediate repeats skipped, as the engine skips
  them) and adds 1 on both sides. A row is a Space-Saving summary (Metwally et al. 2005): a new partner of a full
  row takes the slot of its lowest count and that count plus one, so every partner seen more than 1/``partners``
  of the row's pairs is kept. Memory: 8 bytes per slot (256 per item row at 32), plus ``window`` x 4 + 8 bytes per
  user slot. Cost: O(window x partners) per event, one compiled pass per learned part (after the SGNS call, over
  the same slots, rows and times).
- the source: the query's partners;
- the term, for a candidate whose count with the query falls in bucket b (1, 2-3, 4-7, ..., 64+):
  ``weight * max(0, log(p(b | next item) / p(b | drawn item)) - log(p(0 | next) / p(0 | drawn)))``, made
  non-decreasing in b: the log odds ratio of "the later item of a recent session pair has this count with the
  earlier one" (the pairs of the replay buffer, each pair's own observation left out of its count) against "the
  later item of another pair (an item drawn by recent popularity) has it". Like the attribute term
  (:mod:`streamer.core.attributes`) it is in the units of the score's dot term (SGNS's shifted PMI, a log
  probability ratio) and needs no tuning: measured after the warm-up (seed 1) it is 5.5-5.9 for DIGINETICA, 5.1
  for MovieLens, 4.4-4.9 for yoochoose, nearly flat over the buckets. None (no term) before ``MIN_OBSERVED``
  buffer pairs were already observed. It is re-measured whenever the table or the buffer changed (one compiled
  pass over the buffer, about 1 ms for 10,000 pairs).

The table is checkpointed with the items; the per-user rings of the previous items are not (after a load they
start from the engine's own session rings). A released row's own slots are cleared with the row; the slots of
other rows that name it are emptied at the next query (one pass over the table per batch of releases).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from streamer.core.learning import COUNTER_PAIRS
from streamer.core.sgns import DIRTY_STATE, ITEM_LIVE

__all__ = ["ObservedPairs", "count_events", "BUCKETS", "MIN_OBSERVED"]

BUCKETS = 8  # count buckets of the measured term: unobserved, 1, 2-3, 4-7, ..., 64+
MIN_OBSERVED = 100  # buffer pairs already observed before the term is trusted (below: no term)


@numba.njit(cache=True, nogil=True)
def _slot(partners, row, other):
    """The slot of ``other`` among ``row``'s partners (stored as row + 1), -1 when absent."""
    for slot in range(partners.shape[1]):
        if partners[row, slot] == other + 1:
            return slot
    return -1


@numba.njit(cache=True, nogil=True)
def _bump(partners, counts, row, other):
    """One more observation of ``other`` next to ``row``; a new partner of a full row takes the slot of its lowest
    count and that count plus one (Space-Saving)."""
    best, lowest = -1, np.inf
    for slot in range(partners.shape[1]):
        partner = partners[row, slot]
        if partner == other + 1:
            counts[row, slot] += 1.0
            return
        if partner == 0:
            if lowest > -1.0:
                best, lowest = slot, -1.0  # an empty slot beats any count
        elif counts[row, slot] < lowest:
            best, lowest = slot, counts[row, slot]
    if best >= 0:
        partners[row, best], counts[row, best] = other + 1, max(lowest, 0.0) + 1.0


@numba.njit(cache=True, nogil=True)
def _bucket(count):
    """0 for no count, then 1 + floor(log2(count)), at most BUCKETS - 1."""
    if count < 1.0:
        return 0
    return min(BUCKETS - 1, 1 + int(math.log2(count)))


@numba.njit(cache=True, nogil=True)
def _count_of(partners, counts, row, other):
    slot = _slot(partners, row, other)
    return counts[row, slot] if slot >= 0 else 0.0


@numba.njit(cache=True, nogil=True)
def count_events(items, last_time, ring, slots, rows, times, outcome, gap):
    """Pair each accepted event's live item with the up to ``ring.shape[1]`` previous items of its session (per
    user slot, a new session after ``gap`` seconds, the protocol's rule; the same item excepted, an immediate repeat
    skipped as the engine skips it) and count each
    pair on both sides; both rows are marked ``DIRTY_STATE`` (deltas carry the table)."""
    partners, counts, status, dirty = items.partners, items.partner_counts, items.status, items.dirty
    window = ring.shape[1]
    for index in range(rows.size):
        slot, row = slots[index], rows[index]
        if outcome[index] != 0 or slot < 0 or slot >= ring.shape[0] or row < 0 or status[row] != ITEM_LIVE:
            continue
        if times[index] - last_time[slot] > gap:
            ring[slot, :] = -1
        last_time[slot] = max(last_time[slot], times[index])
        if ring[slot, 0] == row:
            continue  # an immediate repeat: no pairs, as the engine learns none
        for position in range(window):
            earlier = ring[slot, position]
            if earlier < 0 or earlier == row or status[earlier] != ITEM_LIVE:
                continue
            _bump(partners, counts, row, earlier)
            _bump(partners, counts, earlier, row)
            dirty[row] |= DIRTY_STATE
            dirty[earlier] |= DIRTY_STATE
        for position in range(window - 1, 0, -1):
            ring[slot, position] = ring[slot, position - 1]
        ring[slot, 0] = row


@numba.njit(cache=True, nogil=True)
def _measure(partners, counts, pairs, seen_next, seen_drawn):
    """Per buffer pair (later, earlier): the bucket of their count without this observation to ``seen_next``, the
    bucket of earlier with the later item of another pair (drawn by recent popularity) to ``seen_drawn``."""
    total, size = pairs.shape[0], partners.shape[0]
    for index in range(total):
        later, earlier = pairs[index, 0], pairs[index, 1]
        if later < 0 or earlier < 0 or later >= size or earlier >= size or later == earlier:
            continue
        spread = np.uint64(index + 1) * np.uint64(0x9E3779B97F4A7C15)  # a fixed hash of the position
        drawn = pairs[(spread ^ (spread >> np.uint64(29))) % np.uint64(total), 0]
        if drawn < 0 or drawn >= size or drawn == earlier or drawn == later:
            continue
        seen_next[_bucket(_count_of(partners, counts, earlier, later) - 1.0)] += 1.0
        seen_drawn[_bucket(_count_of(partners, counts, earlier, drawn))] += 1.0


@numba.njit(cache=True, nogil=True)
def _forget(partners, counts, dirty, released):
    """Empty every slot naming a released row (``released[row]``); the rows changed are marked ``DIRTY_STATE``."""
    for row in range(partners.shape[0]):
        for slot in range(partners.shape[1]):
            other = partners[row, slot] - 1
            if 0 <= other < released.size and released[other]:
                partners[row, slot], counts[row, slot] = 0, 0.0
                dirty[row] |= DIRTY_STATE


@numba.njit(cache=True, nogil=True)
def _term(partners, counts, queries, candidates, values, out):
    """out[i, j] = values[bucket of count(queries[i], candidates[i or 0, j])] (0 when not partners)."""
    shared = candidates.shape[0] == 1
    for position in range(queries.size):
        row = queries[position]
        if row < 0 or row >= partners.shape[0]:
            continue
        line = 0 if shared else position
        for column in range(candidates.shape[1]):
            candidate = candidates[line, column]
            if candidate < 0:
                continue
            slot = _slot(partners, row, candidate)
            if slot >= 0:
                out[position, column] = values[_bucket(counts[row, slot])]


class ObservedPairs:
    """The counting, candidate source and score term of one engine, over its item arrays. ``tables()`` gives
    (ItemTable, UserTable, ReplayArrays), replaced by a checkpoint load: the rings then start from the engine's."""

    def __init__(self, tables, weight: float, window: int, gap: float):
        self.tables, self.weight, self.gap = tables, float(weight), float(gap)
        self.last_time = np.full(0, -np.inf, np.float64)  # per user slot: its last event time
        self.ring = np.full((0, int(window)), -1, np.int32)  # per user slot: its session's last rows, latest first
        self._source = tables()[2].pairs  # the replay buffer the rings follow (another one: a load)
        self._values, self._measured_for = None, None

    @property
    def enabled(self) -> bool:
        return self.tables()[0].arrays.partners.shape[1] > 0 and self.weight != 0.0

    def follow(self, users: int = 0) -> None:
        """Rings for ``users`` slots; after a checkpoint load, the engine's own session rings."""
        _, user_table, replay = self.tables()
        if replay.pairs is not self._source:
            self._source = replay.pairs
            engine = user_table.arrays
            self.ring = np.where(engine.length[:, None] > 0, engine.ring[:, :self.ring.shape[1]], -1).astype(np.int32)
            self.last_time = np.where(engine.length > 0, engine.last_ts, -np.inf)
        if users > self.ring.shape[0]:
            size = max(users, 2 * self.ring.shape[0], 1024)
            self.ring = _grown(self.ring, size, -1)
            self.last_time = _grown(self.last_time, size, -np.inf)

    def learn(self, slots: np.ndarray, rows: np.ndarray, times: np.ndarray, outcome: np.ndarray) -> None:
        """Count the session pairs of events just learned (``outcome`` 0 = accepted), in order."""
        if not self.enabled or rows.size == 0:
            return
        self.follow(int(slots.max()) + 1)
        count_events(self.tables()[0].arrays, self.last_time, self.ring, np.asarray(slots, np.int64),
                     np.asarray(rows, np.int64), np.asarray(times, np.float64), outcome, self.gap)
        self._measured_for = None

    def forget_rows(self, rows: np.ndarray) -> None:
        """Released rows leave every other row's partners."""
        if self.enabled and rows.size:
            arrays = self.tables()[0].arrays
            released = np.zeros(int(rows.max()) + 1, np.bool_)
            released[rows] = True
            _forget(arrays.partners, arrays.partner_counts, arrays.dirty, released)
            self._measured_for = None

    def values(self) -> np.ndarray | None:
        """The term per count bucket: ``weight * max(0, log odds ratio)`` of "a buffer pair's later item has this
        count with its earlier one" against "the later item of another pair has it", relative to the unobserved
        bucket and made non-decreasing; None before ``MIN_OBSERVED`` buffer pairs were already observed."""
        items, _, replay = self.tables()
        key = (id(replay.pairs), int(replay.counters[COUNTER_PAIRS]))
        if self._measured_for != key:
            self._measured_for, self._values = key, self._measure(items.arrays, replay.pairs)
        return self._values

    def _measure(self, arrays, pairs: np.ndarray) -> np.ndarray | None:
        if not self.enabled:
            return None
        seen_next, seen_drawn = np.zeros(BUCKETS), np.zeros(BUCKETS)
        _measure(arrays.partners, arrays.partner_counts, pairs, seen_next, seen_drawn)
        if seen_next[1:].sum() < MIN_OBSERVED:
            return None
        ratio = (np.log((seen_next + 0.5) / (seen_next.sum() + 0.5 * BUCKETS))
                 - np.log((seen_drawn + 0.5) / (seen_drawn.sum() + 0.5 * BUCKETS)))
        values = np.maximum.accumulate(np.maximum(0.0, ratio - ratio[0]))
        values[0] = 0.0
        return (self.weight * values).astype(np.float32)

    def source(self, arrays, queries: np.ndarray) -> np.ndarray:
        """The query's partners: (len(queries), partners) rows, -1 for none."""
        if not self.enabled:
            return np.zeros((queries.size, 0), np.int64)
        return arrays.partners[queries].astype(np.int64) - 1

    def term(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray | None:
        """The measured term (:meth:`values`) for (queries, candidates): candidates (q, n) per query or (n,)
        shared; None before it is measured."""
        values = self.values()
        if values is None:
            return None
        arrays = self.tables()[0].arrays
        grid = candidates if candidates.ndim == 2 else candidates[None, :]
        out = np.zeros((queries.size, grid.shape[1]), np.float32)
        _term(arrays.partners, arrays.partner_counts, np.asarray(queries, np.int64),
              np.ascontiguousarray(grid, np.int64), values, out)
        return out


def _grown(array: np.ndarray, size: int, fill) -> np.ndarray:
    grown = np.full((size,) + array.shape[1:], fill, array.dtype)
    grown[:array.shape[0]] = array
    return grown
