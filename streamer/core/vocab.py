"""The growing vocabulary: item id <-> row, per-row arrays, counts, attributes, retirement.

Rows are appended as items appear and the arrays grow geometrically (doubling, then by a quarter above 1M rows:
amortised O(1) per new item; the V x d matrices are never copied per batch). Released rows (retired, evicted, expired) go to a free
list and are reused. Counts are cumulative over the whole stream; ``recent`` is the count decayed by the
popularity half-life, as of the item's ``last_seen`` (the ``most_similar`` prior).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from streamer.core.noise import fenwick_build, set_weight
from streamer.core.sgns import DIRTY_STATE, ITEM_FREE, ITEM_LIVE, ITEM_NEW

__all__ = ["ItemArrays", "ItemTable", "clear_rows", "grown_capacity"]

ItemArrays = namedtuple(
    "ItemArrays",
    ["vectors_in", "vectors_out", "accum_in", "accum_out", "counts", "last_seen", "status", "dirty",
     "noise_weights", "noise_tree", "recent"],
)


def _allocate(capacity: int, vector_size: int) -> ItemArrays:
    return ItemArrays(
        np.zeros((capacity, vector_size), np.float32), np.zeros((capacity, vector_size), np.float32),
        np.zeros(capacity, np.float32), np.zeros(capacity, np.float32),
        np.zeros(capacity, np.int64), np.zeros(capacity, np.float64),
        np.zeros(capacity, np.uint8), np.zeros(capacity, np.uint8),
        np.zeros(capacity, np.float64), np.zeros(capacity + 1, np.float64), np.zeros(capacity, np.float64),
    )


DOUBLING_BELOW = 1 << 20  # rows; above, the arrays grow by a quarter


def grown_capacity(capacity: int) -> int:
    """The next capacity: doubling up to ``DOUBLING_BELOW`` rows, then +25% (still amortised O(1) per new item).
    At 10M items doubling would hold up to 16.8M rows (9.5 GB at d = 64) and need 14 GB while it copies;
    +25% holds at most 1.25x the items (measured in docs/state.md)."""
    return 2 * capacity if capacity < DOUBLING_BELOW else capacity + capacity // 4


def clear_rows(arrays: ItemArrays, rows) -> None:
    """A released row holds zeros everywhere but in the noise tree (a delta replays exactly this)."""
    for name in ItemArrays._fields:
        if name != "noise_tree":
            getattr(arrays, name)[rows] = 0


class ItemTable:
    """Item id -> row, the per-row arrays, the attribute index and the retired ids."""

    def __init__(self, vector_size: int, capacity: int = 1024):
        self.vector_size = vector_size
        self.rows: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.free: list[int] = []
        self.arrays = _allocate(capacity, vector_size)
        self.attributes: dict[str, dict[str, str]] = {}
        self.attribute_index: dict[tuple[str, str], set[str]] = {}
        self.retired: set[str] = set()
        self.forget_changes()

    def forget_changes(self) -> None:
        """Start a new delta (:mod:`streamer.core.delta`): what changed outside the ``dirty`` rows since then."""
        self.released: list[tuple[str, int]] = []  # (id, row) released: their rows were zeroed
        self.attributes_changed: set[str] = set()
        self.retired_changed: set[str] = set()

    @property
    def live_count(self) -> int:
        return len(self.rows)

    @property
    def full(self) -> bool:
        """True when the next ``allocate`` grows (copies) the arrays."""
        return not self.free and len(self.ids) >= self.arrays.counts.shape[0]

    def allocate(self, item: str, ts: float = 0.0) -> int:
        """A fresh row for a new ``item`` (status NEW: initialised at its first event)."""
        if self.free:
            row = self.free.pop()
            self.ids[row] = item
        else:
            row = len(self.ids)
            self.ids.append(item)
            if row >= self.arrays.counts.shape[0]:
                self._grow()
        self.arrays.status[row] = ITEM_NEW
        self.arrays.last_seen[row] = ts
        self.arrays.dirty[row] |= DIRTY_STATE
        self.rows[item] = row
        if item in self.retired:
            self.retired.discard(item)
            self.retired_changed.add(item)
        return row

    def retire(self, item: str) -> None:
        """Remember ``item`` as retired (its events are rejected until a catalog upsert brings it back)."""
        self.retired.add(item)
        self.retired_changed.add(item)

    def _grow(self) -> None:
        old = self.arrays
        new = _allocate(grown_capacity(old.counts.shape[0]), self.vector_size)
        for name in ItemArrays._fields:
            if name != "noise_tree":
                getattr(new, name)[: getattr(old, name).shape[0]] = getattr(old, name)
        fenwick_build(new.noise_tree, new.noise_weights)
        self.arrays = new

    def release(self, rows: np.ndarray) -> list[str]:
        """Free ``rows`` (their ids are forgotten; weights leave the noise tree). Returns the ids."""
        arrays = self.arrays
        ids = []
        for row in rows.tolist():
            item = self.ids[row]
            ids.append(item)
            self.released.append((item, row))
            del self.rows[item]
            self.ids[row] = None
            self.free.append(row)
            self._unindex(item)
        for row in rows.tolist():  # the weights leave the tree first
            set_weight(arrays.noise_tree, arrays.noise_weights, row, 0.0)
        clear_rows(arrays, rows)  # status ITEM_FREE (0), counts, vectors, dirty
        return ids

    def set_attributes(self, item: str, attributes: dict[str, str]) -> None:
        self._unindex(item)
        self.attributes_changed.add(item)
        self.attributes[item] = dict(attributes)
        for pair in attributes.items():
            self.attribute_index.setdefault(pair, set()).add(item)

    def _unindex(self, item: str) -> None:
        for pair in self.attributes.pop(item, {}).items():
            members = self.attribute_index.get(pair)
            if members is not None:
                members.discard(item)
                if not members:
                    del self.attribute_index[pair]

    def attribute_neighbours(self, attributes: dict[str, str], limit: int) -> np.ndarray:
        """Rows of up to ``limit`` live items sharing the most attributes with ``attributes``, most frequent first."""
        shared: dict[str, int] = {}
        for pair in attributes.items():
            for item in self.attribute_index.get(pair, ()):
                shared[item] = shared.get(item, 0) + 1
        arrays = self.arrays
        candidates = [
            (-matches, -int(arrays.counts[self.rows[item]]), item)
            for item, matches in shared.items()
            if item in self.rows and arrays.status[self.rows[item]] == ITEM_LIVE and arrays.counts[self.rows[item]] > 0
        ]
        candidates.sort()
        return np.array([self.rows[item] for _, _, item in candidates[:limit]], dtype=np.int32)

    def live_rows(self) -> np.ndarray:
        """Rows whose vectors are served, in row order."""
        count = len(self.ids)
        return np.flatnonzero(self.arrays.status[:count] == ITEM_LIVE)

    def least_used(self, how_many: int, protect: int = -1) -> np.ndarray:
        """The ``how_many`` live-or-new rows with the lowest count (ties: least recently seen first)."""
        count = len(self.ids)
        arrays = self.arrays
        candidates = np.flatnonzero(arrays.status[:count] != ITEM_FREE)
        candidates = candidates[candidates != protect]
        order = np.lexsort((candidates, arrays.last_seen[candidates], arrays.counts[candidates]))
        return np.sort(candidates[order[:how_many]])

    def stale_rows(self, before_ts: float) -> np.ndarray:
        """Rows not seen since ``before_ts`` (item TTL)."""
        count = len(self.ids)
        arrays = self.arrays
        return np.flatnonzero((arrays.status[:count] != ITEM_FREE) & (arrays.last_seen[:count] < before_ts))
