"""Item lifecycle outside the hot loop: catalog upserts, retirement, max_items eviction, TTL expiry.

All of it runs at well-defined points of the event stream (a new item beyond ``max_items``, the event
time crossing a maintenance mark, a catalog call), so results never depend on batch boundaries.
"""

from __future__ import annotations

import zlib

import numpy as np

from streamer.core.sgns import ITEM_LIVE, initialise_rows
from streamer.core.sessions import UserTable
from streamer.core.vocab import ItemTable

__all__ = ["prior_seed", "release_rows", "upsert_items", "evict_least_used", "expire_stale", "EVICTION_FRACTION"]

EVICTION_FRACTION = 0.05  # share of max_items freed per eviction round (amortises the O(V log V) choice)


def release_rows(items: ItemTable, users: UserTable, replay_pairs: np.ndarray, rows: np.ndarray) -> list[str]:
    """Free ``rows`` everywhere (vocabulary, noise tree, session rings, replay buffer); returns their ids."""
    if rows.size == 0:
        return []
    rows = np.asarray(rows, dtype=np.int64)
    users.forget_rows(rows)
    if replay_pairs.size:
        replay_pairs[np.isin(replay_pairs, rows)] = -1
    return items.release(rows)


def prior_seed(seed: int, item: str) -> int:
    """The state of one item's attribute-prior stream (one splitmix64 stream, as ``new_state`` starts it): derived
    from the seed and the id, so announcing items never shifts the learning's stream (with ``prior_weight`` 0 and
    no attribute term, learning with a catalog is learning without one) and needs no state of its own."""
    return ((seed * 0x9E3779B1 + zlib.crc32(item.encode("utf-8"))) + _GOLDEN) & _MASK


_GOLDEN, _MASK = 0x9E3779B97F4A7C15, 0xFFFFFFFFFFFFFFFF


def upsert_items(items: ItemTable, updates: list[tuple[str, dict[str, str], float]], settings) -> None:
    """Create or update items, in order: ``(item, attributes, ts)``. An item without events yet (new, or announced
    before) is served at once, at its attribute prior: the mean of the most frequent items sharing its attributes
    (random when none); its ``prior`` weight (``prior_weight`` with neighbours, 0 without) tells its first event
    how much of that prior to keep next to the session context. The new ids get their rows in one ``allocate``
    and the priors are computed in one compiled call (:func:`initialise_rows`): the Python work per item is its
    id maps, attributes and prior seed. An upsert's neighbours have events (count > 0), which an item started
    here has not, so computing every neighbour list before any prior is the same as one upsert at a time."""
    new: dict[str, float] = {}
    for item, _, ts in updates:
        if item not in items.rows and item not in new:
            new[item] = ts
    if new:
        items.allocate(list(new), np.fromiter(new.values(), np.float64, len(new)))
    rows, starts = items.rows, []
    arrays, limit = items.arrays, settings.cold_start_neighbours
    for item, attributes, _ in updates:
        row = rows[item]
        if attributes:
            items.set_attributes(item, attributes)
        if arrays.status[row] != ITEM_LIVE or arrays.counts[row] == 0:
            held = items.attributes.get(item) or attributes
            starts.append((row, items.attribute_neighbours(held, limit) if held else None, item))
    if not starts:
        return
    neighbours = np.full((len(starts), max(limit, 1)), -1, np.int32)
    counts = np.zeros(len(starts), np.int64)
    for index, (_, found, _) in enumerate(starts):
        if found is not None and found.size:
            neighbours[index, :found.size], counts[index] = found, found.size
    seeds = np.array([prior_seed(settings.seed, item) for _, _, item in starts], np.uint64)
    initialise_rows(items.arrays, np.array([row for row, _, _ in starts], np.int64), neighbours, counts, seeds,
                    settings.init_noise, settings.accum_initial, settings.prior_weight)


def evict_least_used(items: ItemTable, users: UserTable, replay_pairs: np.ndarray, max_items: int) -> list[str]:
    """Make room for one new item: free the least-used rows (lowest count, then least recently seen)."""
    excess = items.live_count - max_items + 1
    if excess <= 0:
        return []
    how_many = max(excess, int(max_items * EVICTION_FRACTION), 1)
    return release_rows(items, users, replay_pairs, items.least_used(how_many))


def expire_stale(items: ItemTable, users: UserTable, replay_pairs: np.ndarray, before_ts: float) -> list[str]:
    """Free items whose last event is older than ``before_ts`` (item_ttl in event time)."""
    return release_rows(items, users, replay_pairs, items.stale_rows(before_ts))
