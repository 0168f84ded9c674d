"""Item lifecycle outside the hot loop: catalog upserts, retirement, max_items eviction, TTL expiry.

All of it runs at well-defined points of the event stream (a new item beyond ``max_items``, the event
time crossing a maintenance mark, a catalog call), so results never depend on batch boundaries.
"""

from __future__ import annotations

import zlib

import numpy as np

from streamer.core.random import new_state
from streamer.core.sgns import ITEM_LIVE, initialise_row
from streamer.core.sessions import UserTable
from streamer.core.vocab import ItemTable

__all__ = ["prior_stream", "release_rows", "upsert_item", "evict_least_used", "expire_stale", "EVICTION_FRACTION"]

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


def prior_stream(seed: int, item: str) -> np.ndarray:
    """The random stream of one item's attribute prior: derived from the seed and the id, so announcing items
    never shifts the learning's stream (with ``prior_weight`` 0 and no attribute term, learning with a catalog
    is learning without one) and needs no state of its own."""
    return new_state((seed * 0x9E3779B1 + zlib.crc32(item.encode("utf-8"))) & 0xFFFFFFFFFFFFFFFF, 1)


def upsert_item(items: ItemTable, item: str, attributes: dict[str, str], ts: float, settings, rng=None) -> bool:
    """Create or update ``item``. An item without events yet (new, or announced before) is served at once, at
    its attribute prior: the mean of the most frequent items sharing its attributes (random when none); its
    ``prior`` weight (1 with neighbours, 0 without) tells its first event how much of that prior to keep next
    to the session context. ``rng`` defaults to :func:`prior_stream`. Returns True when a new row was created."""
    row = items.rows.get(item)
    created = row is None
    if created:
        row = items.allocate(item, ts)
    if attributes:
        items.set_attributes(item, attributes)
    arrays = items.arrays
    if arrays.status[row] != ITEM_LIVE or arrays.counts[row] == 0:
        neighbours = items.attribute_neighbours(items.attributes.get(item, attributes), settings.cold_start_neighbours)
        rng = prior_stream(settings.seed, item) if rng is None else rng
        used = initialise_row(arrays, row, neighbours, neighbours.size, settings.init_noise,
                              settings.accum_initial, rng, 0)
        arrays.prior[row] = settings.prior_weight if used else 0.0
    return created


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
