"""What the engine serves: input + output vectors, a symmetric dot term, and exact change tracking."""

import numpy as np

from streamer import Trainer

from tests.core.synthetic import clustered_events


def trained(**overrides) -> Trainer:
    trainer = Trainer(**{"vector_size": 16, "seed": 5, **overrides})
    trainer.learn(clustered_events(sessions=120))
    return trainer


def test_vectors_serve_input_plus_output():
    trainer = trained()
    ids, vectors = trainer.vectors()
    arrays = trainer._items.arrays
    rows = [trainer._items.rows[item] for item in ids]
    expected = arrays.vectors_in[rows] + arrays.vectors_out[rows]
    assert np.abs(arrays.vectors_out[rows]).max() > 0.01  # the output part is not negligible
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    np.testing.assert_allclose(trainer.vector(ids[3]), expected[3], rtol=1e-6)


def test_dot_term_is_symmetric():
    trainer = trained(cosine_weight=0.0, popularity_weight=0.0)
    ids, _ = trainer.vectors()
    scores = {item: dict(trainer.most_similar(item, k=len(ids))) for item in ids[:10]}
    for first in ids[:10]:
        for second in ids[:10]:
            if first != second:
                assert abs(scores[first][second] - scores[second][first]) < 1e-5


def test_take_changed_is_exactly_the_items_whose_served_vector_moved():
    trainer = trained(negative=15, replay_passes=0)
    before = dict(zip(*trainer.vectors()))
    trainer.take_changed()
    trainer.learn([("late-user", "c0_i0", 1e9), ("late-user", "c0_i1", 1e9 + 1)])
    after = dict(zip(*trainer.vectors()))
    moved = {item for item in before if not np.array_equal(before[item], after[item])}
    assert len(moved) > 2  # negatives' output rows moved too
    assert trainer.take_changed() == moved
