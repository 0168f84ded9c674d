"""The growing vocabulary: item id <-> row, per-row arrays, counts, attributes, retirement.

Rows are appended as items appear and the arrays grow geometrically (doubling, then by a quarter above 1M rows:
amortised O(1) per new item; the V x d matrices are never copied per batch). Released rows (retired, evicted, expired) go to a free
list and are reused. Counts are cumulative over the whole stream; ``recent`` is the count decayed by the
popularity half-life, as of the item's ``last_seen`` (the ``most_similar`` prior). ``prior`` is the weight, in
neighbours, of the attribute prior an announced item (catalog upsert, no event yet) was started at: its first
event blends that prior with the session context (0 = no prior, the context alone).

Attribute index: per ``(key, value)`` attribute its members, and its *leaders*, the ``LEADERS`` members with the
highest counts, kept incrementally: a row whose count changed is offered to its attributes' leaders
(:meth:`ItemTable.offer`, O(LEADERS) per attribute), so finding an upsert's neighbours reads the leaders of its
attributes, never the whole attribute (a category of 10^5 items costs what a category of 10 does).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from streamer.core.leaders import LEADERS, Leaders
from streamer.core.noise import fenwick_build, set_weight
from streamer.core.sgns import DIRTY_STATE, ITEM_FREE, ITEM_LIVE, ITEM_NEW

__all__ = ["LEADERS", "ItemArrays", "ItemTable", "clear_rows", "grown_capacity"]

ItemArrays = namedtuple(
    "ItemArrays",
    ["vectors_in", "vectors_out", "accum_in", "accum_out", "counts", "last_seen", "status", "dirty",
     "noise_weights", "noise_tree", "recent", "prior", "partners", "partner_counts", "index_list"],
)


def _allocate(capacity: int, vector_size: int, partners: int = 0) -> ItemArrays:
    """The per-row arrays; ``partners``: the width of the observed co-occurrence table (partner row + 1, 0 = empty;
    its counts), :mod:`streamer.core.observed_pairs`; ``index_list``: the neighbour index's inverted list the row
    was last put in, + 1 (0 = none), so a checkpoint load skips k-means and the assignment
    (:mod:`streamer.core.index_state`)."""
    return ItemArrays(
        np.zeros((capacity, vector_size), np.float32), np.zeros((capacity, vector_size), np.float32),
        np.zeros(capacity, np.float32), np.zeros(capacity, np.float32),
        np.zeros(capacity, np.int64), np.zeros(capacity, np.float64),
        np.zeros(capacity, np.uint8), np.zeros(capacity, np.uint8),
        np.zeros(capacity, np.float64), np.zeros(capacity + 1, np.float64), np.zeros(capacity, np.float64),
        np.zeros(capacity, np.float32), np.zeros((capacity, partners), np.int32),
        np.zeros((capacity, partners), np.float32), np.zeros(capacity, np.int32),
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

    def __init__(self, vector_size: int, capacity: int = 1024, partners: int = 0):
        self.vector_size = vector_size
        self.rows: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.free: list[int] = []
        self.arrays = _allocate(capacity, vector_size, partners)
        self.attributes: dict[str, dict[str, str]] = {}
        self.attribute_index: dict[tuple[str, str], set[str]] = {}
        self.leaders: dict[tuple[str, str], Leaders] = {}  # attribute -> its most frequent rows
        self.retired: set[str] = set()
        self.releases = 0  # calls of release: a sampler built from the noise weights before one is stale
        self.forget_changes()

    def forget_changes(self) -> None:
        """Start a new delta (:mod:`streamer.core.delta`): what changed outside the ``dirty`` rows since then."""
        self.released: list[tuple[str, int]] = []  # (id, row) released: their rows were zeroed
        self.freed: list[int] = []  # rows released since the serving side last looked (streamer.core.serving)
        self.attributes_changed: set[str] = set()
        self.retired_changed: set[str] = set()

    @property
    def live_count(self) -> int:
        return len(self.rows)

    def room(self) -> int:
        """New items ``allocate`` takes before it grows (copies) the arrays."""
        return len(self.free) + self.arrays.counts.shape[0] - len(self.ids)

    def allocate(self, items: list[str], ts=0.0) -> np.ndarray:
        """Fresh rows for new, distinct ``items`` (status NEW: initialised at their first event), in order: the
        free list first (last freed first), then appended rows. ``ts``: one time, or one per item. One call per
        block of items (a catalog batch, a learned batch's new ids), not per item: the Python work per item is
        the two id maps."""
        count = len(items)
        reused = min(count, len(self.free))
        rows = [self.free.pop() for _ in range(reused)]
        ids = self.ids
        for row, item in zip(rows, items):
            ids[row] = item
        start = len(ids)
        rows.extend(range(start, start + count - reused))
        ids.extend(items[reused:])
        while len(ids) > self.arrays.counts.shape[0]:
            self._grow()
        self.rows.update(zip(items, rows))
        if self.retired:
            back = self.retired.intersection(items)
            self.retired -= back
            self.retired_changed |= back
        found = np.array(rows, np.int64)
        arrays = self.arrays
        arrays.status[found] = ITEM_NEW
        arrays.last_seen[found] = ts
        arrays.dirty[found] |= DIRTY_STATE
        return found

    def retire(self, item: str) -> None:
        """Remember ``item`` as retired (its events are rejected until a catalog upsert brings it back)."""
        self.retired.add(item)
        self.retired_changed.add(item)

    def _grow(self) -> None:
        self.resize(grown_capacity(self.arrays.counts.shape[0]))
        fenwick_build(self.arrays.noise_tree, self.arrays.noise_weights)

    def resize(self, capacity: int) -> None:
        """The arrays at ``capacity`` rows (the new rows zero; the noise tree new and zero: the caller fills it).
        Each array grows in place when nothing else refers to it (``ndarray.resize``: the allocator moves its
        pages, no copy, e.g. on restore) and is copied otherwise (numpy refuses the in-place resize while a view
        or another reference exists, e.g. a background base writing it); either way one array at a time, so the
        peak is the old arrays plus one new one, not twice the state."""
        for name in ItemArrays._fields:
            old = getattr(self.arrays, name)
            self.arrays = self.arrays._replace(**{name: None})  # ``old`` is now this table's only reference
            shape = ((capacity + 1) if name == "noise_tree" else capacity,) + old.shape[1:]
            try:
                if name == "noise_tree":
                    raise ValueError("rebuilt, not kept")
                old.resize(shape, refcheck=True)
                new = old
            except ValueError:  # referred to elsewhere (or the tree): a new array
                new = np.zeros(shape, old.dtype)
                if name != "noise_tree":
                    new[: old.shape[0]] = old
            del old
            self.arrays = self.arrays._replace(**{name: new})

    def release(self, rows: np.ndarray) -> list[str]:
        """Free ``rows`` (their ids are forgotten; weights leave the noise tree). Returns the ids."""
        arrays = self.arrays
        ids = []
        self.releases += 1
        for row in rows.tolist():
            item = self.ids[row]
            ids.append(item)
            self.released.append((item, row))
            self.freed.append(row)
            del self.rows[item]
            self.ids[row] = None
            self.free.append(row)
            self._unindex(item, row)
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
        row = self.rows.get(item)
        if row is not None:
            self.offer(np.array([row]))

    def restore_attributes(self, attributes: dict[str, dict[str, str]]) -> None:
        """The attributes of a restored table (the rows held), indexed at once: per attribute its members, and its
        leaders, the top ``LEADERS`` rows by (count, lower row first) -- what offering every row finds -- from one
        sort of its rows, not one :meth:`set_attributes` per item."""
        self.attributes = attributes
        index: dict[tuple[str, str], set[str]] = {}
        for item, held in attributes.items():
            for pair in held.items():
                members = index.get(pair)
                if members is None:
                    index[pair] = {item}
                else:
                    members.add(item)
        self.attribute_index, self.leaders = index, {}
        counts, rows = self.arrays.counts, self.rows
        for pair, members in index.items():
            found = np.fromiter((rows[item] for item in members if item in rows), np.int64)
            if found.size:
                best = found[np.lexsort((found, -counts[found]))[:LEADERS]]
                leaders = self.leaders[pair] = Leaders()
                leaders.rows, leaders.floor = best.tolist(), int(counts[best].min())

    def _unindex(self, item: str, row: int | None = None) -> None:
        row = self.rows.get(item) if row is None else row
        for pair in self.attributes.pop(item, {}).items():
            members = self.attribute_index.get(pair)
            if members is not None:
                members.discard(item)
                if not members:
                    del self.attribute_index[pair]
            leaders = self.leaders.get(pair)
            if leaders is not None:
                leaders.discard(row)
                if pair not in self.attribute_index:
                    del self.leaders[pair]

    def offer(self, rows: np.ndarray) -> None:
        """Rows whose count may have changed (a learned batch, a new attribute): each enters the leaders of its
        attributes if it is not there and beats the lowest count, or there is room. O(LEADERS) per attribute."""
        if not self.attributes:
            return
        ids, counts, attributes_of = self.ids, self.arrays.counts, self.attributes
        for row in np.unique(rows).tolist():
            attributes = attributes_of.get(ids[row]) if row < len(ids) and ids[row] is not None else None
            if attributes:
                count = counts[row]
                for pair in attributes.items():
                    leaders = self.leaders.get(pair)
                    if leaders is None:
                        leaders = self.leaders[pair] = Leaders()
                    leaders.offer(row, count, counts)

    def attribute_neighbours(self, attributes: dict[str, str], limit: int) -> np.ndarray:
        """Rows of up to ``limit`` live items with events among the leaders of ``attributes``: most shared
        attributes first, then most frequent (ties: lowest row). Reads only the leaders (O(LEADERS) per attribute)."""
        shared: dict[int, int] = {}
        for pair in attributes.items():
            for row in self.leaders_of(pair):
                shared[row] = shared.get(row, 0) + 1
        arrays = self.arrays
        candidates = [(-matches, -int(arrays.counts[row]), row) for row, matches in shared.items()
                      if arrays.status[row] == ITEM_LIVE and arrays.counts[row] > 0]
        candidates.sort()
        return np.array([row for _, _, row in candidates[:limit]], dtype=np.int32)

    def leaders_of(self, pair: tuple[str, str]) -> list[int]:
        """The leader rows of one attribute (rebuilt here from its members after a leader was released)."""
        leaders = self.leaders.get(pair)
        if leaders is None:
            return []
        if leaders.stale:
            rows = [self.rows[item] for item in self.attribute_index.get(pair, ()) if item in self.rows]
            counts = self.arrays.counts
            rows.sort(key=lambda row: (-counts[row], row))
            leaders.rows, leaders.stale = rows[:LEADERS], False
            leaders.floor = int(min(counts[leaders.rows])) if leaders.rows else -1
        return leaders.rows

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
