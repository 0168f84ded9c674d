"""Delta state: a base plus the deltas collected after it restores the trainer bit for bit; a delta names
items by id and holds only what changed; the publisher's dirty bit survives a collection."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer
from streamer.core import delta
from streamer.core.noise import fenwick_build
from streamer.core.persistence import restore_state, trainer_state
from streamer.core.sgns import DIRTY_SERVED, DIRTY_STATE

from tests.core.synthetic import clustered_events
from tests.core.test_persistence import SETTINGS, UNBOUNDED, events, same_state

DEFERRED = {**UNBOUNDED, "replay_passes": 3}  # two passes interleaved, one owed


def assert_identical(left: Trainer, right: Trainer) -> None:
    """Every part of the state, not only what is served."""
    left_meta, left_arrays = trainer_state(left)
    right_meta, right_arrays = trainer_state(right)
    for name in left_arrays:
        if name != "items.dirty":  # the DIRTY_STATE bits differ by design (cleared by collect); served bits kept
            assert np.array_equal(left_arrays[name], right_arrays[name]), name
    assert np.array_equal(left_arrays["items.dirty"] & DIRTY_SERVED, right_arrays["items.dirty"] & DIRTY_SERVED)
    assert left_meta == right_meta


def _copy(trainer: Trainer) -> Trainer:
    meta, arrays = trainer_state(trainer, snapshot=True)
    twin = Trainer.__new__(Trainer)
    restore_state(twin, meta, {name: value.copy() for name, value in arrays.items()})
    return twin


def _catalog(trainer: Trainer, step: int) -> None:
    trainer.catalog([{"op": "upsert", "item": f"new{step}", "attrs": {"cluster": "c1"}},
                     {"op": "upsert", "item": "c0_i1", "attrs": {"colour": str(step)}},
                     {"op": "retire", "item": f"c{step % 6}_i2"}])


@pytest.mark.parametrize("settings", [SETTINGS, UNBOUNDED, DEFERRED, {**UNBOUNDED, "workers": 2}],
                         ids=["bounded", "unbounded", "deferred", "two-workers"])
def test_base_plus_deltas_restores_the_state_bit_for_bit(settings):
    stream = events()
    live = Trainer(**settings)
    live.learn(stream[:50])
    restored = _copy(live)  # the base
    delta.start_tracking(live)
    cuts = [50, 97, 200, 333, 401, len(stream)]
    for step, (start, stop) in enumerate(zip(cuts, cuts[1:])):
        live.learn(stream[start:stop], replay=step % 2 == 0)
        if step == 1:
            _catalog(live, step)
        if step == 2 and live.replay_debt:
            live.replay(live.replay_debt // 2)
        delta.apply(restored, *delta.collect(live))
        assert_identical(live, restored)
    if settings.get("workers", 1) == 1:  # several workers: Hogwild updates race, two runs differ in the last bits
        tail = [("tail", "c2_i3", stream[-1][2] + 10.0 * index) for index in range(1, 20)]
        live.learn(tail)
        restored.learn(tail)
        same_state(live, restored)  # and it learns on the same way


def test_a_delta_names_changed_items_by_id_and_holds_only_them():
    trainer = Trainer(vector_size=8, seed=1, negative=2, replay_passes=0)
    trainer.catalog([{"op": "upsert", "item": f"item{index}"} for index in range(2000)])
    delta.start_tracking(trainer)
    trainer.learn([("u", "item1", 1.0), ("u", "item2", 2.0)])
    meta, arrays = delta.collect(trainer)
    changed = set(meta["item_ids"])
    assert changed == {"item1", "item2"}  # catalog items never seen have no noise weight: never negatives
    rows = arrays["items.rows"]
    assert [trainer._items.ids[row] for row in rows.tolist()] == meta["item_ids"]
    assert arrays["items.vectors_in"].shape == (len(changed), 8)
    assert arrays["items.counts"][meta["item_ids"].index("item1")] == 1
    assert delta.is_empty(trainer)
    again, _ = delta.collect(trainer)
    assert again["item_ids"] == [] and again["released"] == []


def test_rows_drawn_only_as_negatives_carry_their_output_side_alone():
    trainer = Trainer(vector_size=8, seed=1, negative=5, replay_passes=0)
    trainer.learn([(f"u{index}", f"item{index}", float(index)) for index in range(500)])  # every item seen once
    delta.start_tracking(trainer)
    trainer.learn([("v", "item1", 600.0), ("v", "item2", 601.0)])
    meta, arrays = delta.collect(trainer)
    assert set(meta["item_ids"]) == {"item1", "item2"}
    negatives = meta["output_ids"]
    assert 0 < len(negatives) <= 5 and not set(negatives) & {"item1", "item2"}
    assert arrays["items.output.vectors_out"].shape == (len(negatives), 8)
    rows = [trainer._items.rows[item] for item in negatives]
    assert np.array_equal(arrays["items.output.vectors_out"], trainer._items.arrays.vectors_out[rows])


def test_collect_keeps_the_publishers_bit_and_catches_count_only_changes():
    trainer = Trainer(vector_size=8, seed=1, replay_passes=0)
    trainer.learn([("u", "a", 1.0), ("u", "b", 2.0)])
    delta.collect(trainer)
    dirty = trainer._items.arrays.dirty[:2]
    assert np.all(dirty & DIRTY_SERVED) and not np.any(dirty & DIRTY_STATE)
    assert trainer.take_changed() == {"a", "b"}
    trainer.learn([("u", "b", 3.0)])  # an immediate repeat: counted, no pair trained
    meta, arrays = delta.collect(trainer)
    assert meta["item_ids"] == ["b"] and arrays["items.counts"].tolist() == [2]
    assert trainer.take_changed() == set()  # the served vector did not change


def test_released_items_reach_the_delta_by_id():
    trainer = Trainer(vector_size=8, seed=1, replay_passes=0)
    trainer.learn([("u", "a", 1.0), ("u", "b", 2.0)])
    delta.collect(trainer)
    trainer.catalog([{"op": "retire", "item": "a"}])
    meta, _ = delta.collect(trainer)
    assert [item for item, _ in meta["released"]] == ["a"] and meta["retired_added"] == ["a"]


def test_tree_nodes_cover_every_sum_a_changed_row_is_part_of():
    weights = np.random.default_rng(0).random(37)
    tree = np.zeros(38)
    fenwick_build(tree, weights)
    changed = np.array([0, 5, 36])
    weights[changed] += 1.0
    rebuilt = np.zeros(38)
    fenwick_build(rebuilt, weights)
    nodes = delta.tree_nodes(changed, 38)
    tree[nodes] = rebuilt[nodes]
    assert np.allclose(tree, rebuilt)
    assert nodes.size < 38


def test_clustered_quality_is_unchanged_by_restoring_from_deltas():
    stream = clustered_events(sessions=200)
    live = Trainer(vector_size=16, seed=2)
    restored = _copy(live)
    delta.start_tracking(live)
    for start in range(0, len(stream), 300):
        live.learn(stream[start:start + 300])
        delta.apply(restored, *delta.collect(live))
    assert live.most_similar("c0_i1", 5) == restored.most_similar("c0_i1", 5)


def test_a_delta_gathered_into_kept_buffers_equals_a_fresh_one_and_the_next_reuses_them():
    fresh, kept = Trainer(**SETTINGS), Trainer(**SETTINGS)
    buffers: dict = {}
    gathered, stream = [], events()
    for step, batch in enumerate([stream[: len(stream) // 2], stream[len(stream) // 2:]]):
        fresh.learn(batch)
        kept.learn(batch)
        fresh_meta, fresh_arrays = delta.collect(fresh)
        kept_meta, kept_arrays = delta.collect(kept, buffers)
        assert fresh_meta == kept_meta
        for name, value in fresh_arrays.items():
            assert np.array_equal(value, kept_arrays[name]), (step, name)
        gathered.append(kept_arrays["items.vectors_in"])
    assert np.shares_memory(gathered[1], buffers["items.vectors_in"])
    assert np.shares_memory(gathered[0], gathered[1])  # the second delta reused the first one's memory
