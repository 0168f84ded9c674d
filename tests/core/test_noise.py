"""The incremental negative-sampling distribution matches count**alpha within tolerance."""

import numpy as np
import pytest

from streamer.core.noise import fenwick_build, fenwick_sample, fenwick_sample_many, set_weight, target_distribution
from streamer.core.random import new_state


def draw(tree, weights, draws: int, seed: int = 5) -> np.ndarray:
    rng = new_state(seed)
    samples = np.array([fenwick_sample(tree, weights, rng, 0) for _ in range(draws)])
    return np.bincount(samples, minlength=weights.size) / draws


@pytest.mark.parametrize("alpha", [0.75, 0.0, -0.5])
def test_samples_follow_count_power_alpha_after_incremental_updates(alpha):
    counts = np.zeros(40, np.int64)
    weights = np.zeros(40)
    tree = np.zeros(41)
    random = np.random.default_rng(1)
    for item in random.zipf(1.6, size=3000) % 37:  # incremental updates only, like the stream
        counts[item] += 1
        set_weight(tree, weights, int(item), float(counts[item]) ** alpha)
    for item in (3, 11):  # retired: weight 0
        set_weight(tree, weights, item, 0.0)
        counts[item] = 0
    observed = draw(tree, weights, 60_000)
    expected = target_distribution(counts, alpha)
    assert np.abs(observed - expected).max() < 0.01
    assert observed[[3, 11, 37, 38, 39]].sum() == 0.0  # retired and never-seen rows are never drawn
    rebuilt = np.zeros_like(tree)
    fenwick_build(rebuilt, weights)
    assert np.allclose(rebuilt, tree)


def test_empty_distribution_draws_nothing():
    weights = np.zeros(8)
    tree = np.zeros(9)
    assert fenwick_sample(tree, weights, new_state(1), 0) == -1


def test_trainer_noise_tracks_running_counts():
    from streamer import Trainer

    trainer = Trainer(vector_size=8, alpha=0.5)
    events = [("u", f"i{index % 7}", float(index)) for index in range(700)]
    events += [("u", "i0", 700.0 + index) for index in range(300)]
    trainer.learn(events)
    arrays = trainer._items.arrays
    rows = [trainer._items.rows[f"i{index}"] for index in range(7)]
    expected = target_distribution(arrays.counts[rows], 0.5)
    observed = arrays.noise_weights[rows] / arrays.noise_tree[0]
    assert np.allclose(observed, expected, atol=1e-9)


@pytest.mark.parametrize("zero_every", [0, 3])
def test_many_draws_side_by_side_equal_one_by_one(zero_every):
    """fenwick_sample_many is the side-by-side form of fenwick_sample: same samples, same generator state after.
    With zero_every, the tree still carries weight at leaves whose plain weight is 0 (what rounding can leave):
    those draws are rejected and redrawn, and the side-by-side form must fall back to the one-by-one order."""
    weights = np.random.default_rng(3).zipf(1.4, size=1000).astype(np.float64) ** 0.75
    tree = np.zeros(weights.size + 1)
    fenwick_build(tree, weights)
    if zero_every:
        weights[::zero_every] = 0.0  # the tree is left as it was
    one_by_one, side_by_side = new_state(9), new_state(9)
    for _ in range(200):
        expected = [fenwick_sample(tree, weights, one_by_one, 0) for _ in range(30)]
        drawn = np.empty(30, np.int64)
        fenwick_sample_many(tree, weights, drawn, side_by_side, 0)
        assert drawn.tolist() == expected
        assert side_by_side[0] == one_by_one[0]
    empty = np.empty(5, np.int64)
    fenwick_sample_many(np.zeros(9), np.zeros(8), empty, side_by_side, 0)
    assert empty.tolist() == [-1] * 5


def _zipf_weights(rows: int = 3000, seed: int = 2) -> np.ndarray:
    counts = np.random.default_rng(seed).zipf(1.5, rows).astype(np.int64)
    counts[::9] = 0  # free, retired or never-seen rows
    return np.where(counts > 0, counts.astype(np.float64) ** 0.75, 0.0)


def test_alias_table_draws_the_trees_distribution():
    """Chi-square against the exact distribution, and the total-variation distance to the tree's own sample of
    the same size: the alias table samples what the Fenwick tree samples."""
    from streamer.core.noise import alias_build, alias_sample_many

    weights = _zipf_weights()
    tree = np.zeros(weights.size + 1)
    fenwick_build(tree, weights)
    draws = 400_000
    from_alias, from_tree = np.empty(draws, np.int64), np.empty(draws, np.int64)
    alias_sample_many(alias_build(weights), from_alias, new_state(7), 0)
    fenwick_sample_many(tree, weights, from_tree, new_state(7), 0)
    expected = weights / weights.sum()
    observed = np.bincount(from_alias, minlength=weights.size)
    heavy = expected * draws >= 20  # chi-square over the cells with room for it, the light tail pooled
    cells = np.append(observed[heavy], observed[~heavy].sum())
    wanted = np.append(expected[heavy], expected[~heavy].sum()) * draws
    chi_square, freedom = ((cells - wanted) ** 2 / wanted).sum(), cells.size - 1
    assert chi_square < freedom + 5 * np.sqrt(2 * freedom)  # ~5 sigma
    tree_distance = 0.5 * np.abs(np.bincount(from_tree, minlength=weights.size) / draws - expected).sum()
    alias_distance = 0.5 * np.abs(observed / draws - expected).sum()
    assert alias_distance < 1.5 * tree_distance + 0.002
    assert observed[weights == 0].sum() == 0  # rows without weight are never drawn


def test_alias_table_of_nothing_draws_nothing_and_one_row_always_that_row():
    from streamer.core.noise import alias_build, alias_sample_many

    out = np.zeros(5, np.int64)
    alias_sample_many(alias_build(np.zeros(6)), out, new_state(1), 0)
    assert out.tolist() == [-1] * 5
    alias_sample_many(alias_build(np.array([0.0, 0.0, 3.0, 0.0])), out, new_state(1), 0)
    assert out.tolist() == [2] * 5
