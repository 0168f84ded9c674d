"""The skip-gram-with-negative-sampling step: the one implementation of the math (numba, nopython).

``train_pair`` moves the input vector of ``source`` towards predicting ``target`` through the output
vectors, against ``negative`` items drawn from the noise distribution. Learning rates are per row
AdaGrad (Kaji & Kobayashi, "Incremental Skip-gram Model with Negative Sampling", 2017): each row keeps
the running sum of its mean squared gradient, and its step is ``learning_rate / sqrt(sum)``. A stream
that never ends needs no global schedule: frequent items settle, new and rare items still move fast.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from streamer.core.noise import fenwick_sample_many
from streamer.core.random import next_unit

__all__ = ["draw_negatives", "ITEM_FREE", "ITEM_NEW", "ITEM_LIVE", "DIRTY_SERVED", "DIRTY_STATE", "DIRTY_OUTPUT",
           "DIRTY_INDEX", "DIRTY_ALL",
           "pair_scratch", "train_pair", "initialise_row", "initialise_rows", "blend_row"]

ITEM_FREE = 0  # row unused (free list)
ITEM_NEW = 1  # id known, vector not initialised yet (initialised at its first event)
ITEM_LIVE = 2  # vector initialised; served by vectors() / most_similar()

# ``dirty`` is a bit set per row, one bit per consumer of "this row changed"; a write sets every bit and each
# consumer clears only its own: the publisher (served vectors, neighbour lists) and the checkpoint's delta state.
DIRTY_SERVED = 1  # the served vector may have changed since it was last taken for publishing
DIRTY_STATE = 2  # the row changed since the last checkpoint (delta segments)
DIRTY_OUTPUT = 4  # only its output side (vectors_out, accum_out) changed since the last checkpoint: a negative
DIRTY_INDEX = 8  # the served vector may have moved since the neighbour index last looked (streamer.core.similar_items)
DIRTY_ALL = DIRTY_SERVED | DIRTY_STATE | DIRTY_INDEX
DIRTY_OUTPUT_ROW = DIRTY_SERVED | DIRTY_OUTPUT | DIRTY_INDEX  # what an SGNS step writes to an output row

_MAX_EXPONENT = 8.0
_TABLE_SIZE = 2048
# logistic function tabulated on [-_MAX_EXPONENT, _MAX_EXPONENT] (word2vec's EXP_TABLE): no exp() in the loop
_SIGMOID = (1.0 / (1.0 + np.exp(-np.linspace(-_MAX_EXPONENT, _MAX_EXPONENT, _TABLE_SIZE + 1)))).astype(np.float32)
_SCALE = np.float32(_TABLE_SIZE / (2.0 * _MAX_EXPONENT))


@numba.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _sigmoid(score):
    if score <= -_MAX_EXPONENT:
        return _SIGMOID[0]
    if score >= _MAX_EXPONENT:
        return _SIGMOID[_TABLE_SIZE]
    return _SIGMOID[int((score + _MAX_EXPONENT) * _SCALE + np.float32(0.5))]


@numba.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _dot(left, left_row, right, right_row):
    """Dot product of ``left[left_row]`` and ``right[right_row]``, indexed in place: a row view would cost an
    atomic reference count increment and decrement (numba's NRT) per use in the innermost loop."""
    total = np.float32(0.0)
    for index in range(left.shape[1]):
        total += left[left_row, index] * right[right_row, index]
    return total


@numba.njit(cache=True, nogil=True)
def draw_negatives(items, negatives, rng, slot):
    """Fill ``negatives`` with rows drawn from the noise distribution (-1 where nothing can be drawn).

    One draw serves every pair of an event (shared negatives, as in batched word2vec variants): the
    O(log V) Fenwick descents are paid once per event instead of once per pair.
    """
    fenwick_sample_many(items.noise_tree, items.noise_weights, negatives, rng, slot)


@numba.njit(cache=True, nogil=True)
def pair_scratch(vector_size, negative):
    """The float32 scratch ``train_pair`` needs: the gradient (``vector_size``), then one score per row."""
    return np.zeros(vector_size + negative + 1, np.float32)


@numba.njit(cache=True, nogil=True, fastmath=True, inline="always")
def train_pair(items, source, target, negatives, learning_rate, gradient, weight=1.0):
    """One SGNS update: input row ``source`` predicts output row ``target`` against the ``negatives`` rows
    (a drawn row equal to ``target`` or -1 is skipped), the pair's loss scaled by ``weight``. ``gradient`` is
    the float32 scratch of :func:`pair_scratch`. Inlined (numba IR) into its callers, which must be compiled
    with fastmath too: a call would cost an atomic reference count increment and decrement per array argument,
    twice per pair.

    The scores of all rows are computed first (independent dot products overlap in the processor), then
    the rows are updated in order. A row's update changes only its own score, so only a row drawn twice
    needs its score again, from the updated vector: the result is that of scoring and updating one row
    after another."""
    vectors_in, vectors_out, accum_in, accum_out, dirty = (items.vectors_in, items.vectors_out, items.accum_in,
                                                           items.accum_out, items.dirty)
    size, count = vectors_in.shape[1], negatives.shape[0]
    if gradient.shape[0] < size + count + 1:
        raise ValueError("train_pair: the scratch must come from pair_scratch(vector_size, negative)")
    squared_hidden = _dot(vectors_in, source, vectors_in, source) / size
    for index in range(size):
        gradient[index] = 0.0
    gradient[size] = _dot(vectors_in, source, vectors_out, target)
    for draw in range(1, count + 1):
        row = negatives[draw - 1]
        if row >= 0 and row != target:
            gradient[size + draw] = _dot(vectors_in, source, vectors_out, row)
    for draw in range(count + 1):
        if draw == 0:
            row, label = target, np.float32(1.0)
            score = gradient[size]
        else:
            row = negatives[draw - 1]
            if row < 0 or row == target:
                continue
            label = np.float32(0.0)
            repeated = False
            for earlier in range(draw - 1):
                repeated |= negatives[earlier] == row
            score = _dot(vectors_in, source, vectors_out, row) if repeated else gradient[size + draw]
        error = (label - _sigmoid(score)) * np.float32(weight)
        accum_out[row] += error * error * squared_hidden
        step = np.float32(learning_rate / math.sqrt(accum_out[row])) * error
        for index in range(size):
            gradient[index] += error * vectors_out[row, index]
            vectors_out[row, index] += step * vectors_in[source, index]
        dirty[row] |= DIRTY_OUTPUT_ROW  # the served vector is input + output; a delta writes its output side
    squared_gradient = np.float32(0.0)
    for index in range(size):
        squared_gradient += gradient[index] * gradient[index]
    accum_in[source] += squared_gradient / size
    step = np.float32(learning_rate / math.sqrt(accum_in[source]))
    for index in range(size):
        vectors_in[source, index] += step * gradient[index]
    dirty[source] = DIRTY_ALL


@numba.njit(cache=True, nogil=True, fastmath=True)
def initialise_row(items, row, neighbours, neighbour_count, noise_scale, accum_initial, rng, slot):
    """Start ``row`` at the mean of the live rows in ``neighbours[:neighbour_count]`` plus small noise.

    With no live neighbour the input vector is word2vec's uniform(-0.5, 0.5) / vector_size and the
    output vector is zero. Returns the number of neighbours used.
    """
    vectors_in, vectors_out = items.vectors_in, items.vectors_out
    size = vectors_in.shape[1]
    vectors_in[row, :] = 0.0
    vectors_out[row, :] = 0.0
    used = 0
    for position in range(neighbour_count):
        other = neighbours[position]
        if other < 0 or other == row or items.status[other] != ITEM_LIVE:
            continue
        used += 1
        for index in range(size):
            vectors_in[row, index] += vectors_in[other, index]
            vectors_out[row, index] += vectors_out[other, index]
    scale = np.float32(1.0 / used) if used > 0 else np.float32(0.0)
    jitter = np.float32(noise_scale if used > 0 else 1.0) / size
    for index in range(size):
        vectors_in[row, index] = vectors_in[row, index] * scale + (next_unit(rng, slot) - 0.5) * jitter
        vectors_out[row, index] *= scale
    items.accum_in[row] = accum_initial
    items.accum_out[row] = accum_initial
    items.status[row] = ITEM_LIVE
    items.dirty[row] = DIRTY_ALL
    return used


@numba.njit(cache=True, nogil=True)
def initialise_rows(items, rows, neighbours, neighbour_counts, seeds, noise_scale, accum_initial, prior_weight):
    """:func:`initialise_row` for each of ``rows`` in order, row ``rows[i]`` from ``neighbours[i, :neighbour_counts[i]]``
    with its own one-stream generator started at ``seeds[i]``; its ``prior`` weight becomes ``prior_weight`` when
    it had neighbours, else 0. One compiled call for a whole catalog batch."""
    rng = np.zeros(1, np.uint64)
    for index in range(rows.shape[0]):
        rng[0] = seeds[index]
        used = initialise_row(items, rows[index], neighbours[index], neighbour_counts[index], noise_scale,
                              accum_initial, rng, 0)
        items.prior[rows[index]] = prior_weight if used > 0 else np.float32(0.0)


@numba.njit(cache=True, nogil=True, fastmath=True)
def blend_row(items, row, neighbours, neighbour_count, noise_scale, rng, slot):
    """First event of an item the catalog announced: its vectors become the blend of its attribute prior (the
    current vectors, weighing ``items.prior[row]`` neighbours) and the live rows of ``neighbours[:neighbour_count]``
    (its session context), plus small noise on the input vector. Without context it keeps the prior, or (prior
    weight 0) restarts as a new item without context would (random). Clears the prior weight. Returns the number
    of context rows used."""
    vectors_in, vectors_out = items.vectors_in, items.vectors_out
    size = vectors_in.shape[1]
    weight = np.float32(items.prior[row])
    items.prior[row] = 0.0
    used = 0
    for position in range(neighbour_count):
        other = neighbours[position]
        if other >= 0 and other != row and items.status[other] == ITEM_LIVE:
            used += 1
    if used == 0:
        if weight == 0.0:
            initialise_row(items, row, neighbours, 0, noise_scale, items.accum_in[row], rng, slot)
        return 0
    scale = np.float32(1.0) / (np.float32(used) + weight)
    jitter = np.float32(noise_scale) / size
    for index in range(size):
        total_in, total_out = weight * vectors_in[row, index], weight * vectors_out[row, index]
        for position in range(neighbour_count):
            other = neighbours[position]
            if other >= 0 and other != row and items.status[other] == ITEM_LIVE:
                total_in += vectors_in[other, index]
                total_out += vectors_out[other, index]
        vectors_in[row, index] = total_in * scale + (next_unit(rng, slot) - 0.5) * jitter
        vectors_out[row, index] = total_out * scale
    items.dirty[row] = DIRTY_ALL
    return used
