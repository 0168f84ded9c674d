"""The compiled full score and top-k selection (streamer.core.scoring) against a plain numpy statement of the
score, on small random models: same scores (~1e-5), same top-k ids, and the same rules for the query itself,
retired and repeated candidates and the extra terms."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.similarity import score_candidates


def _reference(trainer, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The full score written out in numpy (the module docstring of streamer.core.similarity), float64."""
    arrays, settings, now = trainer._items.arrays, trainer.settings, trainer._watermark
    vin, vout = arrays.vectors_in.astype(np.float64), arrays.vectors_out.astype(np.float64)
    served = vin + vout
    unit = served / np.maximum(np.linalg.norm(served, axis=1, keepdims=True), 1e-12)
    dot = (vin[queries] @ vout[candidates].T + vout[queries] @ vin[candidates].T) / 2
    if settings.popularity_half_life is None or not np.isfinite(now):
        counts = arrays.counts[candidates].astype(np.float64)
    else:
        counts = arrays.recent[candidates] * np.exp2(-np.maximum(now - arrays.last_seen[candidates], 0) / settings.popularity_half_life)
    return (settings.dot_weight * dot + settings.cosine_weight * unit[queries] @ unit[candidates].T
            + settings.popularity_weight * np.log1p(counts)[None, :])


def _reference_top(trainer, query: int, k: int, extra=None) -> list[tuple[int, float]]:
    live = trainer._items.live_rows()
    live = live[live != query]
    scores = _reference(trainer, np.array([query]), live)[0]
    if extra is not None:
        scores = scores + extra(np.array([query]), live)[0]
    order = np.lexsort((live, -scores))[:k]
    return [(int(live[i]), float(scores[i])) for i in order]


@pytest.fixture(params=[365 * 86400.0, None], ids=["decayed", "cumulative"])
def model(request):
    """A few hundred items with random-walk sessions and Zipf popularity, learned (not synthetic vectors)."""
    # the observed co-occurrence term off: the reference is the full score alone (extra terms: the last test)
    trainer = Trainer(vector_size=16, seed=5, popularity_half_life=request.param, cooccurrence_weight=0.0)
    random = np.random.default_rng(2)
    popularity = 1.0 / np.arange(1, 301) ** 0.9
    drawn = random.choice(300, size=6000, p=popularity / popularity.sum())
    trainer.learn([(f"u{n // 6}", f"i{item}", float(10 * n)) for n, item in enumerate(drawn.tolist())])
    return trainer


def test_score_candidates_is_the_full_score_shared_and_per_query(model):
    live = model._items.live_rows()
    queries = live[:7]
    expected = _reference(model, queries, live)
    arrays, settings, now = model._items.arrays, model.settings, model._watermark
    assert np.allclose(score_candidates(arrays, queries, live, settings, now), expected, rtol=1e-5, atol=1e-5)
    per_query = np.random.default_rng(0).choice(live, (7, 30))
    expected = np.take_along_axis(_reference(model, queries, np.arange(live.max() + 1)), per_query, axis=1)
    assert np.allclose(score_candidates(arrays, queries, per_query, settings, now), expected, rtol=1e-5, atol=1e-5)


def test_exact_most_similar_is_the_reference_top_k_without_the_query_and_retired_items(model):
    retired = model._items.rows["i3"]
    model.catalog([{"op": "retire", "item": "i3"}])
    rows = model._items.rows
    for item in ["i0", "i1", "i17", "i250"]:
        found = [(rows[name], score) for name, score in model.most_similar(item, 12, exact=True)]
        expected = _reference_top(model, rows[item], 12)
        assert [row for row, _ in found] == [row for row, _ in expected]
        assert np.allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5, atol=1e-5)
        assert retired not in {row for row, _ in found}


def test_candidates_drop_the_query_repeats_minus_one_and_retired_rows_and_keep_the_best(model):
    similar, arrays = model._similar, model._items.arrays
    model.catalog([{"op": "retire", "item": "i5"}])
    live = model._items.live_rows()
    retired = np.flatnonzero(arrays.status[:len(model._items.ids)] != 2)  # i5, retired
    assert retired.size
    queries = live[[0, 1, 2]]
    pool = np.concatenate([live[:40], retired])
    random = np.random.default_rng(4)
    per_query = random.choice(pool, (3, 25))
    per_query[:, 0] = queries  # the query itself
    per_query[:, 1] = -1  # no candidate
    others = live[(live != queries[0]) & (live != queries[1]) & (live != queries[2])]
    best = others[np.argmax(_reference(model, queries, others), axis=1)]
    per_query[:, 2] = per_query[:, 3] = best  # each query's best item, twice: it must come once
    shared = np.unique(np.concatenate([live[30:60], queries[:1]]))  # overlaps the per-query lists and a query
    rows, scores = similar.best(arrays, queries, per_query, shared, 8, model.settings, model._watermark)
    for position, query in enumerate(queries.tolist()):
        union = np.unique(np.concatenate([per_query[position], shared]))
        union = union[(union >= 0) & (union != query) & (arrays.status[union] == 2)]
        reference = _reference(model, np.array([query]), union)[0]
        order = np.lexsort((union, -reference))[:8]
        assert rows[position].tolist() == union[order].tolist()
        assert np.allclose(scores[position], reference[order], rtol=1e-5, atol=1e-5)
    assert not similar._marks.any(), "the scratch marks are left clear for the next call"


def test_fewer_candidates_than_k_pad_with_minus_one(model):
    arrays, live = model._items.arrays, model._items.live_rows()
    rows, scores = model._similar.best(arrays, live[:2], live[None, 2:5].repeat(2, 0), live[:0], 6, model.settings,
                                      model._watermark)
    assert (rows[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all() and (rows[:, :3] >= 0).all()


def test_extra_terms_are_added_before_the_top_k_is_chosen(model):
    boosted = model._items.rows["i200"]

    def term(queries, candidates):
        out = np.zeros((queries.size, candidates.shape[-1]), np.float32)
        out[np.broadcast_to(candidates, out.shape) == boosted] = 50.0
        return out

    model._similar.terms.append(term)
    for exact in (True, False):
        found = model.most_similar("i1", 5, exact=exact)
        assert found[0][0] == "i200"
    expected = _reference_top(model, model._items.rows["i1"], 5, extra=term)
    found = model.most_similar("i1", 5, exact=True)
    assert [model._items.rows[name] for name, _ in found] == [row for row, _ in expected]
    assert np.allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5, atol=1e-5)
