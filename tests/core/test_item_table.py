"""ItemTable at scale: ids allocated in blocks, arrays grown in place when nothing else holds them (restore,
growth) and copied when something does, attributes restored with the same leaders as one upsert at a time."""

from __future__ import annotations

import numpy as np

from streamer.core.vocab import LEADERS, ItemTable


def _table(rows: int) -> ItemTable:
    items = ItemTable(vector_size=4, capacity=rows)
    items.allocate([f"i{index}" for index in range(rows)], 1.5)
    items.arrays.vectors_in[:rows] = np.arange(rows, dtype=np.float32)[:, None]
    return items


def test_a_block_of_new_ids_gets_consecutive_rows_after_the_free_ones():
    items = _table(8)
    items.free = [3, 5]
    rows = items.allocate(["a", "b", "c"], np.array([1.0, 2.0, 3.0]))
    assert rows.tolist() == [5, 3, 8]
    assert [items.rows[item] for item in "abc"] == [5, 3, 8] and items.ids[3] == "b"
    assert items.arrays.last_seen[[5, 3, 8]].tolist() == [1.0, 2.0, 3.0]


def test_arrays_grow_in_place_when_unreferenced_and_by_copy_when_a_view_is_held():
    items = _table(8)
    identity = id(items.arrays.vectors_in)  # no reference kept
    items.resize(16)
    assert id(items.arrays.vectors_in) == identity  # the same array, resized
    assert items.arrays.vectors_in.shape == (16, 4) and items.arrays.noise_tree.shape == (17,)
    assert items.arrays.vectors_in[:8, 0].tolist() == list(range(8)) and not items.arrays.vectors_in[8:].any()
    view = items.arrays.vectors_in[:2]
    items.resize(32)
    assert view.base is not items.arrays.vectors_in  # held elsewhere: copied, the view still reads valid memory
    assert items.arrays.vectors_in.shape == (32, 4)
    assert view[:, 0].tolist() == [0.0, 1.0] and items.arrays.vectors_in[:8, 0].tolist() == list(range(8))


def test_restored_attributes_have_the_leaders_of_one_upsert_at_a_time():
    rows = 5 * LEADERS
    incremental, restored = _table(rows), _table(rows)
    counts = (np.arange(rows) * 7919) % 13  # many ties: the lower row leads
    attributes = {f"i{index}": {"kind": str(index % 3), "all": "yes"} for index in range(rows)}
    for items in (incremental, restored):
        items.arrays.counts[:rows] = counts
    for item, held in attributes.items():
        incremental.set_attributes(item, held)
    restored.restore_attributes({item: dict(held) for item, held in attributes.items()})
    assert set(restored.leaders) == set(incremental.leaders)
    for pair, leaders in incremental.leaders.items():
        assert sorted(restored.leaders[pair].rows) == sorted(leaders.rows)
        assert restored.leaders[pair].floor == leaders.floor
    assert restored.attribute_index == incremental.attribute_index
