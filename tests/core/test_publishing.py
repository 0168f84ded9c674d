""""Changed means moved" (take_changed with a threshold) and the lists a release makes due."""

from __future__ import annotations

import numpy as np

from streamer import Trainer
from streamer.core.sgns import DIRTY_INDEX
from tests.core.synthetic import clustered_events


def _trained(**knobs) -> Trainer:
    trainer = Trainer(vector_size=16, seed=4, **knobs)
    trainer.learn(clustered_events(clusters=6, items_per_cluster=30, sessions=300))
    return trainer


def test_without_a_threshold_every_changed_item_is_taken():
    trainer = _trained()
    assert len(trainer.take_changed()) == trainer.item_count
    trainer.learn([("new-user", "c0_i1", 1e7), ("new-user", "c0_i2", 1e7 + 1)])
    changed = trainer.take_changed()
    assert {"c0_i1", "c0_i2"} <= changed
    assert trainer.take_changed() == set()


def test_with_a_threshold_only_moved_items_are_taken_and_the_rest_wait_at_most_max_age():
    trainer = _trained(replay_passes=0)
    first = trainer.take_changed(threshold=0.05, max_age=30.0, now=100.0)
    assert len(first) == trainer.item_count  # never published: all of them
    _, before = trainer.vectors_for(sorted(first))
    trainer.learn([("late-user", "c1_i3", 1e7), ("late-user", "c1_i4", 1e7 + 1)])  # 2 events: negatives barely move
    all_changed = _trained(replay_passes=0)
    all_changed.take_changed()
    all_changed.learn([("late-user", "c1_i3", 1e7), ("late-user", "c1_i4", 1e7 + 1)])
    touched = all_changed.take_changed()  # what every-dirty publishing would write
    moved = trainer.take_changed(threshold=0.05, max_age=30.0, now=101.0)
    assert moved < touched  # fewer writes: the negatives' vectors hardly moved
    ids = sorted(first)
    _, after = trainer.vectors_for(ids)
    relative = np.linalg.norm(after - before, axis=1) / np.linalg.norm(before, axis=1)
    assert {item for item, change in zip(ids, relative) if change > 0.05} <= moved
    waiting = touched - moved
    assert trainer.take_changed(threshold=0.05, max_age=30.0, now=110.0) == set()  # not overdue yet
    assert trainer.take_changed(threshold=0.05, max_age=30.0, now=131.5) == waiting  # the staleness bound


def test_a_retired_item_makes_the_lists_holding_it_due():
    trainer = _trained()
    lists = dict(zip(["c2_i0", "c2_i1", "c3_i0"], trainer.neighbour_lists(["c2_i0", "c2_i1", "c3_i0"], 5)))
    gone = lists["c2_i0"][0][0]
    holders = {item for item, answer in lists.items() if gone in {other for other, _ in answer}}
    assert holders
    assert trainer.take_lists_due() == set()
    trainer.catalog([{"op": "retire", "item": gone}])
    assert trainer.take_lists_due() == holders - {gone}
    assert trainer.take_lists_due() == set()


def test_a_take_that_does_not_follow_leaves_the_index_behind_and_the_next_following_take_catches_up():
    """``take_changed(follow=False)`` (spare-time replay while a debt is owed) publishes without re-indexing; the
    next take that follows re-indexes every row left behind, also those it finds within the publish threshold."""
    trainer = _trained(replay_passes=0)
    trainer.take_changed(threshold=0.02, max_age=1e9, now=0.0)
    trainer.most_similar("c0_i0", 5)  # builds the index
    similar, arrays = trainer._similar, trainer._items.arrays
    indexed = similar.index.stored(np.arange(trainer.item_count)).copy()
    trainer.learn(clustered_events(clusters=6, items_per_cluster=30, sessions=300, seed=1, start=1e7))
    published = trainer.take_changed(threshold=0.02, max_age=1e9, now=1.0, follow=False)
    rows = np.array(sorted(trainer._items.rows[item] for item in published), np.int64)
    assert rows.size and np.array_equal(similar.index.stored(rows), indexed[rows])  # behind: the old keys
    assert similar._moved(similar._keys(arrays, rows), indexed[rows]).sum() > rows.size // 2  # far behind
    trainer.learn([("late-user", "c1_i3", 2e7), ("late-user", "c1_i4", 2e7 + 1)])  # a few rows move a little
    trainer.take_changed(threshold=0.02, max_age=1e9, now=2.0)  # follows again
    assert not similar._moved(similar._keys(arrays, rows), similar.index.stored(rows)).any()
    assert not (arrays.dirty[:trainer.item_count] & DIRTY_INDEX).any()


def test_held_back_names_the_changed_items_the_threshold_holds_and_none_once_they_are_taken():
    trainer = _trained(replay_passes=0)
    assert trainer.held_back() == []
    trainer.take_changed(threshold=0.05, max_age=30.0, now=100.0)
    trainer.learn([("late-user", "c1_i3", 1e7), ("late-user", "c1_i4", 1e7 + 1)])  # negatives barely move
    moved = trainer.take_changed(threshold=0.05, max_age=30.0, now=101.0)
    held = trainer.held_back()
    assert held and not set(held) & moved
    trainer.catalog([{"op": "retire", "item": held[0]}])
    trainer.take_changed(threshold=0.05, max_age=30.0, now=102.0)
    assert held[0] not in trainer.held_back()  # retired: nothing to publish
    assert set(trainer.take_changed(threshold=0.05, max_age=0.0, now=103.0)) == set(held[1:])  # as take_waiting
    assert trainer.held_back() == []
