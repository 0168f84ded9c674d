"""The neighbour index and the indexed ``most_similar``: recall against the brute force, incremental upkeep."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.neighbours import NeighbourIndex, moved_rows
from streamer.core.similar_items import SimilarItems
from streamer.core.similarity import score_candidates, score_keys, score_queries


def _clustered(count: int, size: int = 16, clusters: int = 40, seed: int = 0) -> np.ndarray:
    random = np.random.default_rng(seed)
    centres = random.normal(size=(clusters, size))
    return (centres[random.integers(0, clusters, count)] + 0.4 * random.normal(size=(count, size))).astype(np.float32)


def _exact_cosine(vectors: np.ndarray, queries: np.ndarray, count: int) -> np.ndarray:
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.argsort(-(units[queries] @ units.T), axis=1)[:, :count]


@pytest.mark.parametrize("flat_limit", [100_000, 500])  # exact scan, inverted lists
def test_index_search_finds_the_cosine_neighbours(flat_limit):
    vectors = _clustered(3000)
    index = NeighbourIndex(16, flat_limit=flat_limit)
    index.rebuild(np.arange(3000), vectors)
    assert (index.lists > 0) == (flat_limit < 3000)
    queries = np.arange(0, 3000, 30)
    found = index.search(vectors[queries], 20)
    expected = _exact_cosine(vectors, queries, 20)
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 20 for a, b in zip(found, expected)])
    assert recall >= 0.9


def test_index_update_replaces_and_remove_drops():
    vectors = _clustered(2000)
    index = NeighbourIndex(16, flat_limit=500)
    index.rebuild(np.arange(2000), vectors)
    index.update(np.array([7]), vectors[[1500]])  # row 7 now sits where row 1500 is
    assert len(index) == 2000
    assert 7 in index.search(vectors[[1500]], 5)[0].tolist()
    index.remove(np.array([7, 1500]))
    assert len(index) == 1998
    assert not {7, 1500} & set(index.search(vectors[[1500]], 50)[0].tolist())


def test_index_reports_stale_when_the_catalog_outgrows_its_lists():
    index = NeighbourIndex(16, flat_limit=500)
    vectors = _clustered(3000)
    index.update(np.arange(400), vectors[:400])
    assert not index.stale
    index.update(np.arange(400, 600), vectors[400:600])
    assert index.stale  # the flat scan outgrew flat_limit
    index.rebuild(np.arange(600), vectors[:600])
    assert not index.stale and index.lists
    index.update(np.arange(600, 1300), vectors[600:1300])
    assert index.stale  # doubled since the lists were trained


def test_moved_rows_is_relative_to_the_reference():
    reference = np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 0.0]], np.float32)
    current = reference + np.array([[0.5, 0.0], [0.5, 0.0], [0.0, 0.0]], np.float32)
    assert moved_rows(current, reference, 0.1).tolist() == [True, False, True]


@pytest.fixture(scope="module")
def trained():
    """A Zipf catalog (popularity dominates the score) of a few thousand items, inverted lists forced on."""
    random = np.random.default_rng(0)
    items = 4000
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    drawn = random.choice(items, size=60_000, p=popularity / popularity.sum())
    clusters = drawn % 50  # sessions stay within a cluster of items: the cosine has something to find
    events, ts = [], 0.0
    for session in range(3000):
        cluster = random.integers(50)
        members = drawn[clusters == cluster]
        for item in random.choice(members, size=int(random.integers(2, 12))):
            events.append((f"u{session}", f"i{item}", ts))
            ts += 1.0
    trainer = Trainer(vector_size=32, seed=2)
    trainer._similar = _similar_items(trainer, flat_limit=500)
    trainer.learn(events)
    return trainer


def _similar_items(trainer, **options) -> SimilarItems:
    """A SimilarItems for ``trainer`` with test options (the engine's own is built with the defaults)."""
    return SimilarItems(trainer.settings, clock=lambda: trainer._watermark, **options)


def _recall(approximate, exact, k):
    return np.mean([len({a for a, _ in x} & {e for e, _ in y}) / k for x, y in zip(approximate, exact)])


def test_indexed_most_similar_recalls_the_exact_ranking(trained):
    ids, _ = trained.vectors()
    queries = [ids[i] for i in np.random.default_rng(1).choice(len(ids), 200, replace=False)]
    approximate = trained.most_similar_many(queries, 10)
    exact = trained.most_similar_many(queries, 10, exact=True)
    assert trained._similar.index.lists > 0  # the inverted lists answered, not the flat scan
    assert _recall(approximate, exact, 10) >= 0.95
    # the same full score either way: a common neighbour has the same score in both answers
    common = dict(exact[0])
    assert all(abs(common[item] - score) < 1e-4 for item, score in approximate[0] if item in common)
    assert trained.most_similar(queries[0], 10) == approximate[0]


def test_popular_items_reach_the_candidates_without_the_cosine():
    trainer = Trainer(vector_size=8, seed=1)
    trainer._similar = _similar_items(trainer, index_candidates=2, popular_candidates=1)
    events = [(f"u{n}", "hit", float(n)) for n in range(300)] + [("a", "x", 400.0), ("a", "y", 401.0),
                                                                    ("b", "z", 402.0), ("b", "w", 403.0)]
    trainer.learn(events)
    exact = trainer.most_similar("x", 3, exact=True)
    assert "hit" in {item for item, _ in exact}  # the prior puts it there
    assert "hit" in {item for item, _ in trainer.most_similar("x", 3)}


def test_index_follows_learning_retirement_and_checkpoints(tmp_path):
    trainer = Trainer(vector_size=16, seed=3)
    trainer._similar = _similar_items(trainer, flat_limit=50)
    events = [(f"u{n % 40}", f"i{(n * 7) % 300}", float(n)) for n in range(6000)]
    trainer.learn(events)
    before = trainer.most_similar_many(["i7", "i14"], 5)
    gone = before[0][0][0]
    trainer.catalog([{"op": "retire", "item": gone, "ts": 7000.0}])
    assert gone not in {item for answer in trainer.most_similar_many(["i7", "i14"], 20) for item, _ in answer}
    assert trainer.most_similar(gone, 5) == []
    trainer.learn([(f"v{n % 30}", f"new{n % 60}", 8000.0 + n) for n in range(2000)])
    assert trainer.sync_index() > 0  # the new items (and the moved ones) go in
    assert trainer.sync_index() == 0  # nothing changed since
    ids, _ = trainer.vectors()
    assert len(trainer._similar.index) == len(ids)
    path = tmp_path / "model.ckpt"
    trainer.save(path)
    loaded = Trainer.load(path)
    assert not loaded._similar.built  # not in the checkpoint: rebuilt from the vectors at the first query
    answers = loaded.most_similar_many(["new3", "i14"], 5)
    assert len(loaded._similar.index) == len(ids)
    assert _recall(answers, loaded.most_similar_many(["new3", "i14"], 5, exact=True), 5) >= 0.8


def test_score_keys_times_score_queries_is_the_full_score(trained):
    arrays, settings, now = trained._items.arrays, trained.settings, trained._watermark
    rows = trained._items.live_rows()[:300]
    expected = score_candidates(arrays, rows[:20], rows, settings, now)
    product = score_queries(arrays, rows[:20], settings) @ score_keys(arrays, rows, settings, now).T
    assert np.allclose(product, expected, atol=1e-3)


def test_the_index_alone_ranks_by_the_full_score_not_the_cosine():
    # no popular source: the score keys carry the popularity term, so the index itself finds a popular item
    # that is 5th by the full score but only 14th of 61 by the cosine (a cosine index's 6 candidates miss it)
    trainer = Trainer(vector_size=8, seed=1)
    trainer._similar = _similar_items(trainer, index_candidates=6)
    trainer._similar.sources = [trainer._similar._index_source]
    events, ts = [(f"u{n}", "hit", float(n)) for n in range(300)], 400.0
    for session in range(40):
        for position in range(3):
            events.append((f"a{session}", f"i{(session * 3 + position) % 60}", ts))
            ts += 1.0
    trainer.learn(events)
    exact = trainer.most_similar("i0", 5, exact=True)
    assert "hit" in {item for item, _ in exact}
    assert trainer.most_similar("i0", 5) == exact


def test_score_key_search_probes_the_lists_faiss_would_by_the_direction_part_alone():
    # the index picks the probed lists itself from the keys' direction part (search_preassigned): the same
    # lists, so the same rows, as faiss's own coarse search over whole keys
    random = np.random.default_rng(3)
    size, direction = 48, slice(32, 48)
    keys = random.normal(size=(4000, size)).astype(np.float32)
    keys[:, direction] = _clustered(4000, size=16)
    keys[:, direction] /= np.linalg.norm(keys[:, direction], axis=1, keepdims=True)
    index = NeighbourIndex(size, flat_limit=500, direction=direction, probes=4)
    index.rebuild(np.arange(4000), keys)
    assert index.lists > 4
    queries = keys[:50] * 0.5
    assert index.search(queries, 10).tolist() == index._index.search(queries, 10)[1].tolist()


def test_a_rebuild_asks_for_its_vectors_block_by_block_and_builds_the_same_index(monkeypatch):
    from streamer.core import neighbours

    monkeypatch.setattr(neighbours, "ASSIGN_BLOCK", 7000)
    vectors = _clustered(20000)
    whole = NeighbourIndex(16, flat_limit=500)
    whole.rebuild(np.arange(20000) * 2, vectors)
    asked = []

    def vectors_of(positions):
        asked.append(positions.size)
        return vectors[positions]

    blocks = NeighbourIndex(16, flat_limit=500)
    blocks.rebuild(np.arange(20000) * 2, vectors_of=vectors_of)
    assert asked[0] < 20000 and asked[1:] == [7000, 7000, 6000]  # the k-means sample, then the blocks
    assert blocks.search(vectors[:40], 10).tolist() == whole.search(vectors[:40], 10).tolist()


def test_lists_worn_by_updates_are_kept_while_they_still_fit_and_trained_again_once_the_rows_left_them():
    from streamer.core.list_fit import fit_sample, lloyd_gain, still_fits

    index = NeighbourIndex(16, flat_limit=500)
    rows, vectors = np.arange(3000), _clustered(3000)
    index.rebuild(rows, vectors)
    noisy = vectors + np.random.default_rng(5).normal(0, 0.02, vectors.shape).astype(np.float32)
    for _ in range(5):  # 15,000 updates of 3,000 rows: replaced 5 times over, the same directions
        index.update(rows, noisy)
    assert index.stale and index.worn
    assert still_fits(index, index.stored(rows[fit_sample(index, rows.size)]))
    assert not index.stale  # kept: the count starts again
    elsewhere = _clustered(3000, seed=9)  # the rows moved to other clusters
    assert lloyd_gain(index.centroids, elsewhere[:2000], elsewhere[2000:]) > 0.05
    for _ in range(5):
        index.update(rows, elsewhere)
    assert index.worn and not still_fits(index, index.stored(rows[fit_sample(index, rows.size)]))


def test_an_engine_index_worn_by_updates_keeps_lists_that_still_fit(trained):
    from streamer.core.sgns import DIRTY_INDEX, ITEM_LIVE

    arrays, rows = trained._items.arrays, np.flatnonzero(trained._items.arrays.status == ITEM_LIVE)
    similar = trained._similar
    similar.sync(arrays, len(trained._items.ids))
    trainings = similar.index.trainings
    similar.index.updates_since_training = 4 * similar.index.trained_size + 1  # worn by updates
    arrays.dirty[rows[:10]] |= DIRTY_INDEX  # something to re-index, so that sync looks
    similar.sync(arrays, len(trained._items.ids))
    assert similar.index.trainings == trainings and not similar.index.stale  # the same vectors: kept
