"""The SGNS step (``train_pair``) against a plain reference: score a row, update it, then the next row."""

import math

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.sgns import _MAX_EXPONENT, _SCALE, _SIGMOID, _TABLE_SIZE, pair_scratch, train_pair


def _sigmoid(score: float) -> float:
    if score <= -_MAX_EXPONENT:
        return float(_SIGMOID[0])
    if score >= _MAX_EXPONENT:
        return float(_SIGMOID[_TABLE_SIZE])
    return float(_SIGMOID[int((score + _MAX_EXPONENT) * _SCALE + 0.5)])


def reference_step(arrays, source, target, negatives, learning_rate, weight):
    """word2vec's loop with per-row AdaGrad, one row after another (float64, no tricks)."""
    vectors_in, vectors_out = arrays["vectors_in"], arrays["vectors_out"]
    size = vectors_in.shape[1]
    hidden = vectors_in[source].astype(np.float64)
    squared_hidden = float(hidden @ hidden) / size
    gradient = np.zeros(size)
    for draw, row in enumerate([target, *negatives]):
        if draw > 0 and (row < 0 or row == target):
            continue
        label = 1.0 if draw == 0 else 0.0
        error = (label - _sigmoid(float(hidden @ vectors_out[row]))) * weight
        arrays["accum_out"][row] += error * error * squared_hidden
        step = learning_rate / math.sqrt(arrays["accum_out"][row]) * error
        gradient += error * vectors_out[row]
        vectors_out[row] += step * hidden
    arrays["accum_in"][source] += float(gradient @ gradient) / size
    vectors_in[source] += learning_rate / math.sqrt(arrays["accum_in"][source]) * gradient


def _trained_items():
    trainer = Trainer(vector_size=16, seed=4, replay_passes=0)
    trainer.learn([(f"u{index % 9}", f"i{index % 13}", float(index)) for index in range(400)])
    return trainer


@pytest.mark.parametrize("negatives", [
    [3, 5, 7, 9],
    [3, 5, 3, 3, 9, 5],  # rows drawn more than once: each later draw sees the earlier updates
    [3, -1, 1, 5, 1],  # nothing drawn (-1) and the target drawn as a negative: skipped
])
def test_train_pair_equals_the_row_by_row_reference(negatives):
    trainer = _trained_items()
    items = trainer._items.arrays
    reference = {name: getattr(items, name).astype(np.float64)
                 for name in ("vectors_in", "vectors_out", "accum_in", "accum_out")}
    negatives = np.array(negatives, np.int64)
    gradient = pair_scratch(items.vectors_in.shape[1], len(negatives))
    for source, target, weight in ((0, 1, 1.0), (1, 0, 0.5), (2, 1, 1.0)):
        train_pair(items, source, target, negatives, 0.2, gradient, weight)
        reference_step(reference, source, target, negatives, 0.2, weight)
    for name, expected in reference.items():
        assert np.allclose(getattr(items, name), expected, rtol=1e-4, atol=1e-6), name


def test_a_scratch_too_small_for_the_scores_is_refused():
    items = _trained_items()._items.arrays
    negatives = np.array([3, 5], np.int64)
    with pytest.raises(ValueError, match="pair_scratch"):
        train_pair(items, 0, 1, negatives, 0.2, np.zeros(items.vectors_in.shape[1], np.float32))
