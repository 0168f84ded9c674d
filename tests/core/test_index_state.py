"""The neighbour index survives checkpoints: its lists' centroids and each row's list ride the base and segments,
so a load puts every row back in its list without k-means or assigning every row (streamer.core.index_state)."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer
from streamer.core import delta
from streamer.core.neighbours import NeighbourIndex
from streamer.core.persistence import restore_state, trainer_state
from streamer.core.sgns import DIRTY_ALL, DIRTY_INDEX, ITEM_LIVE
from streamer.core.similar_items import SimilarItems

ITEMS, SIZE = 3000, 16


def _engine(seed: int = 0) -> Trainer:
    """``ITEMS`` items with clustered vectors and Zipf counts, inverted lists forced on (flat_limit 500)."""
    trainer = Trainer(vector_size=SIZE, seed=seed, replay_passes=0)
    trainer._similar = SimilarItems(trainer.settings, clock=lambda: trainer._watermark, flat_limit=500)
    trainer._items.allocate([f"i{index}" for index in range(ITEMS)], 0.0)
    arrays, random = trainer._items.arrays, np.random.default_rng(seed)
    centres = random.normal(0, 0.3, (60, SIZE)).astype(np.float32)
    cluster = random.integers(0, 60, ITEMS)
    arrays.vectors_in[:ITEMS] = centres[cluster] + random.normal(0, 0.1, (ITEMS, SIZE))
    arrays.vectors_out[:ITEMS] = 0.5 * centres[cluster] + random.normal(0, 0.1, (ITEMS, SIZE))
    arrays.counts[:ITEMS] = random.permutation(np.maximum(1, (1e4 / np.arange(1, ITEMS + 1) ** 0.9).astype(np.int64)))
    arrays.recent[:ITEMS] = arrays.counts[:ITEMS]
    arrays.status[:ITEMS] = ITEM_LIVE
    arrays.dirty[:ITEMS] = DIRTY_ALL
    return trainer


QUERIES = [f"i{index}" for index in range(0, ITEMS, 37)]


def _loaded(trainer: Trainer, tmp_path) -> Trainer:
    path = tmp_path / "model.ckpt"
    trainer.save(path)
    return Trainer.load(path)


def _no_training(monkeypatch) -> None:
    def refuse(*_arguments):
        raise AssertionError("k-means ran: the checkpoint's lists were not used")

    monkeypatch.setattr(NeighbourIndex, "_kmeans", refuse)


def test_a_load_puts_every_row_back_in_its_list_without_kmeans(tmp_path, monkeypatch):
    live = _engine()
    live.sync_index()
    assert live._similar.index.lists > 0 and live._items.arrays.index_list[:ITEMS].min() >= 1  # every row has a list
    loaded = _loaded(live, tmp_path)
    _no_training(monkeypatch)
    assigned = []
    nearest = NeighbourIndex._nearest
    monkeypatch.setattr(NeighbourIndex, "_nearest", lambda self, stored: assigned.append(len(stored)) or nearest(self, stored))
    assert loaded.sync_index() == ITEMS
    assert assigned == []  # no row assigned again: each went back to its list
    assert np.array_equal(loaded._similar.index.centroids, live._similar.index.centroids)
    assert np.array_equal(loaded._items.arrays.index_list, live._items.arrays.index_list)
    assert loaded.most_similar_many(QUERIES, 10) == live.most_similar_many(QUERIES, 10)


def test_rows_that_may_have_moved_since_they_were_indexed_go_to_their_nearest_list(tmp_path, monkeypatch):
    live = _engine()
    live.sync_index()
    arrays, moved = live._items.arrays, np.arange(0, ITEMS, 10)
    arrays.vectors_in[moved] = -arrays.vectors_in[moved]  # the other way: another list, not re-indexed yet
    arrays.vectors_out[moved] = -arrays.vectors_out[moved]
    arrays.dirty[moved] |= DIRTY_INDEX
    before = arrays.index_list.copy()
    loaded = _loaded(live, tmp_path)
    _no_training(monkeypatch)
    loaded.sync_index()
    index, lists = loaded._similar.index, loaded._items.arrays.index_list
    keys = loaded._similar._keys(loaded._items.arrays, moved)
    assert np.array_equal(lists[moved], index._nearest(keys) + 1)
    assert np.mean(lists[moved] != before[moved]) > 0.5  # most of them changed list
    still = np.setdiff1d(np.arange(ITEMS), moved)
    assert np.array_equal(lists[still], before[still])


def test_a_segment_after_new_lists_carries_them_and_every_rows_list(monkeypatch):
    live = _engine()
    live.sync_index()
    meta, arrays = trainer_state(live, snapshot=True)
    restored = Trainer.__new__(Trainer)
    restore_state(restored, meta, {name: value.copy() for name, value in arrays.items()})
    delta.start_tracking(live)
    live._items.arrays.counts[:5] += 1  # a small change: its segment holds no lists
    live._items.arrays.dirty[:5] |= DIRTY_ALL
    quiet_meta, quiet = delta.collect(live)
    assert "index.centroids" not in quiet and "index.lists" not in quiet
    delta.apply(restored, quiet_meta, quiet)
    live._similar.index.seed = 7  # new lists (another k-means sample): the rows not in the next segment move too
    live._similar.rebuild(live._items.arrays, ITEMS)
    assert not np.array_equal(live._similar.index.centroids, arrays["index.centroids"])
    segment_meta, segment = delta.collect(live)
    assert segment["items.rows"].size == 0 and segment["index.lists"].shape == (ITEMS,)
    delta.apply(restored, segment_meta, segment)
    _no_training(monkeypatch)
    restored.sync_index()
    assert np.array_equal(restored._similar.index.centroids, live._similar.index.centroids)
    assert np.array_equal(restored._items.arrays.index_list, live._items.arrays.index_list)
    assert restored.most_similar_many(QUERIES, 10) == live.most_similar_many(QUERIES, 10)


def test_a_checkpoint_without_the_index_lists_trains_new_ones():
    live = _engine()
    live.sync_index()
    meta, arrays = trainer_state(live, snapshot=True)
    del meta["index"], arrays["index.centroids"], arrays["items.index_list"]  # as written before they were kept
    restored = Trainer.__new__(Trainer)
    restore_state(restored, meta, {name: value.copy() for name, value in arrays.items()})
    restored._similar.index.flat_limit = 500
    restored.sync_index()
    assert restored._similar.index.trainings == 1
    assert np.array_equal(restored._items.arrays.index_list, live._items.arrays.index_list)  # seeded: the same lists


@pytest.mark.parametrize("trained_size, trains", [(ITEMS, 0), (ITEMS // 3, 1)])  # the same catalog; tripled since
def test_adopted_lists_are_used_unless_the_rows_already_outgrew_them(trained_size, trains):
    vectors = np.random.default_rng(0).normal(size=(ITEMS, 8)).astype(np.float32)
    first = NeighbourIndex(8, flat_limit=500)
    rows = np.arange(ITEMS)
    lists = first.rebuild(rows, vectors)
    second = NeighbourIndex(8, flat_limit=500, seed=3)
    second.adopt(first.centroids, trained_size, 0)
    second.rebuild(rows, vectors, lists_of=lambda positions: (lists[positions], np.zeros(positions.size, bool)))
    assert second.trainings == trains
    assert np.array_equal(second.centroids, first.centroids) == (trains == 0)
