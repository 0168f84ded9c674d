"""A rare query's young vectors give way to the counts: ``cold_query_events`` scales the dot and cosine terms of a
query with n events by n / (n + cold_query_events) where the catalog's measured attribute term credits its
attributes (docs/catalog.md), in the one compiled scoring pass."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer
from tests.core.test_catalog_cold_start import _announce, _catalogued, _category_sessions


def _parts(trainer: Trainer, query: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vector part: dot + cosine terms, popularity part) of the full score, in numpy (float64)."""
    arrays, settings = trainer._items.arrays, trainer.settings
    vin, vout = arrays.vectors_in.astype(np.float64), arrays.vectors_out.astype(np.float64)
    unit = (vin + vout) / np.maximum(np.linalg.norm(vin + vout, axis=1, keepdims=True), 1e-12)
    dot = (vin[candidates] @ vout[query] + vout[candidates] @ vin[query]) / 2
    vector = settings.dot_weight * dot + settings.cosine_weight * unit[candidates] @ unit[query]
    counts = arrays.recent[candidates] * np.exp2(-np.maximum(trainer._watermark - arrays.last_seen[candidates], 0)
                                                 / settings.popularity_half_life)
    return vector, settings.popularity_weight * np.log1p(counts)


@pytest.fixture(scope="module")
def learned() -> Trainer:
    """Sessions that stay in one category (the attribute term is measured large), and one item seen once."""
    trainer = _catalogued(cooccurrence_weight=0.0)
    events = _category_sessions(same_category=True)
    events.append(("late", "c0_new", events[-1][2] + 5000.0))
    _announce(trainer, "c0_new", {"category": "0"})
    trainer.learn(events)
    return trainer


def test_the_kernel_scales_each_querys_dot_and_cosine_terms_only(learned):
    query = learned._items.rows["c1_i0"]
    candidates = np.array([learned._items.rows[f"c1_i{index}"] for index in range(1, 10)], np.int64)
    learned._similar.query_scales = lambda queries: np.full(queries.size, 0.25, np.float32)
    try:
        rows, scores = learned._similar.best(learned._items.arrays, np.array([query]), candidates[None, :],
                                             np.zeros(0, np.int64), 9, learned.settings, learned._watermark)
    finally:
        learned._similar.query_scales = learned._vector_scales
    vector, popularity = _parts(learned, query, rows[0])
    attribute = learned._attribute_term(np.array([query]), rows[0])[0]
    np.testing.assert_allclose(scores[0], 0.25 * vector + popularity + attribute, rtol=1e-5, atol=1e-4)


def test_a_rare_query_of_an_informative_attribute_counts_its_events(learned):
    rows = np.array([learned._items.rows["c0_new"], learned._items.rows["c1_i0"]], np.int64)
    counts = learned._items.arrays.counts[rows].astype(np.float64)
    assert counts[0] == 1 and counts[1] > 20
    np.testing.assert_allclose(learned._vector_scales(rows), counts / (counts + 10.0), rtol=1e-6)
    # what most_similar serves for the rare query: its vector terms at 1/11
    found = learned.most_similar("c0_new", 5, exact=True)
    candidates = np.array([learned._items.rows[item] for item, _ in found], np.int64)
    vector, popularity = _parts(learned, rows[0], candidates)
    attribute = learned._attribute_term(rows[:1], candidates)[0]
    np.testing.assert_allclose([score for _, score in found], vector / 11.0 + popularity + attribute, rtol=1e-5,
                               atol=1e-4)


def test_no_scale_without_an_informative_catalog_or_when_off():
    plain = Trainer(vector_size=16, seed=1)  # no catalog (yoochoose): the vectors alone speak for a rare query
    plain.learn(_category_sessions(same_category=True))
    off = _catalogued(cold_query_events=0.0)
    off.learn(_category_sessions(same_category=True))
    for trainer in (plain, off):
        assert trainer._vector_scales(np.array([trainer._items.rows["c0_i0"]], np.int64)) is None
