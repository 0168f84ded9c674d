"""Catalog upserts are applied in runs (one ``allocate``, one compiled call for the priors): a batch gives the
same engine as the same updates one call at a time."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer


def _updates() -> list[dict]:
    updates = []
    for index in range(600):
        updates.append({"op": "upsert", "item": f"n{index}", "attrs": {"kind": str(index % 4)} if index % 2 else {}})
        if index % 150 == 7:
            updates.append({"op": "retire", "item": f"n{index - 3}"})
        if index % 100 == 2:  # the same item again in the batch, re-attributed
            updates.append({"op": "upsert", "item": f"n{index - 1}", "attrs": {"kind": "1"}})
    return updates


def _engine(**settings) -> Trainer:
    trainer = Trainer(vector_size=8, seed=5, replay_passes=0, prior_weight=0.5, **settings)
    trainer.learn([(f"u{index % 7}", f"e{index % 13}", float(index)) for index in range(300)])
    trainer.catalog([{"op": "upsert", "item": f"e{index}", "attrs": {"kind": str(index % 4)}} for index in range(13)])
    return trainer


@pytest.mark.parametrize("settings", [{}, {"max_items": 400}])
def test_a_catalog_batch_equals_the_same_updates_one_at_a_time(settings):
    batched, single = _engine(**settings), _engine(**settings)
    assert batched.catalog(_updates()).accepted == len(_updates())
    for update in _updates():
        single.catalog([update])
    for trainer in (batched, single):
        trainer.learn([(f"u{index % 7}", f"n{index % 600}", 400.0 + index) for index in range(2000)])
    (ids, vectors), (single_ids, single_vectors) = batched.vectors(), single.vectors()
    assert ids == single_ids and len(ids) > 300
    np.testing.assert_array_equal(vectors, single_vectors)
    assert np.array_equal(batched._items.arrays.prior, single._items.arrays.prior)
