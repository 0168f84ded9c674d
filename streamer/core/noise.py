"""Incremental negative-sampling distribution: a Fenwick (binary indexed) tree of weights.

Item ``i`` is drawn with probability ``weight[i] / sum(weight)`` where ``weight = count ** alpha``
for items with a positive count and 0 otherwise (free, retired or never-seen rows are never drawn).
Updating one weight and drawing one sample both cost O(log V) (a draw of many samples descends for all
of them level by level, see :func:`fenwick_sample_many`); growing the table rebuilds it in
O(V) (amortised O(1) per item with capacity doubling). All functions are numba nopython.
"""

from __future__ import annotations

import numba
import numpy as np

from streamer.core.random import next_unit

__all__ = ["noise_weight", "fenwick_add", "fenwick_mark_ancestors", "fenwick_build", "fenwick_total", "fenwick_sample", "fenwick_sample_many",
           "set_weight"]


@numba.njit(cache=True, nogil=True)
def noise_weight(count, alpha):
    """count ** alpha for a positive count, 0 otherwise (so alpha may be negative)."""
    if count <= 0:
        return 0.0
    return float(count) ** alpha


@numba.njit(cache=True, nogil=True)
def fenwick_add(tree, index, delta):
    """Add ``delta`` to leaf ``index`` (0-based); ``tree`` has length capacity + 1, tree[0] = total."""
    position = index + 1
    size = tree.shape[0]
    tree[0] += delta
    while position < size:
        tree[position] += delta
        position += position & (-position)


@numba.njit(cache=True, nogil=True)
def set_weight(tree, weights, index, value):
    """Set leaf ``index`` to ``value`` in both the plain weight array and the tree."""
    delta = value - weights[index]
    if delta != 0.0:
        weights[index] = value
        fenwick_add(tree, index, delta)


@numba.njit(cache=True, nogil=True)
def fenwick_build(tree, weights):
    """Rebuild ``tree`` exactly from ``weights`` in O(V)."""
    size = tree.shape[0]
    tree[:] = 0.0
    for index in range(weights.shape[0]):
        tree[index + 1] = weights[index]
    tree[0] = weights.sum()
    for position in range(1, size):
        parent = position + (position & (-position))
        if parent < size:
            tree[parent] += tree[position]


@numba.njit(cache=True, nogil=True)
def fenwick_mark_ancestors(rows, marked):
    """Mark (``marked``: bool, len(tree)) the tree positions whose sums include any of ``rows``: each walk up stops at
    a position already marked (its ancestors are), so k rows cost O(k + distinct positions), not O(k log V)."""
    size = marked.shape[0]
    for index in range(rows.shape[0]):
        position = np.int64(rows[index]) + 1
        while position < size and not marked[position]:
            marked[position] = True
            position += position & -position


@numba.njit(cache=True, nogil=True)
def fenwick_total(tree):
    """Sum of all weights, kept in the otherwise unused slot 0."""
    return tree[0]


@numba.njit(cache=True, nogil=True)
def fenwick_sample(tree, weights, rng, slot):
    """Draw one index with probability weight/total, or -1 if nothing can be drawn.

    Descends the tree from the highest power of two; a leaf whose exact weight is 0 (reachable
    only through float rounding) is rejected and the draw repeated.
    """
    size = tree.shape[0]
    top = 1
    while top * 2 < size:
        top *= 2
    for _attempt in range(8):
        total = fenwick_total(tree)
        if total <= 0.0:
            return -1
        remaining = next_unit(rng, slot) * total
        position = 0
        step = top
        while step > 0:
            candidate = position + step
            if candidate < size and tree[candidate] <= remaining:
                position = candidate
                remaining -= tree[candidate]
            step >>= 1
        if position < weights.shape[0] and weights[position] > 0.0:
            return position
    return -1


@numba.njit(cache=True, nogil=True)
def fenwick_sample_many(tree, weights, out, rng, slot):
    """Fill ``out`` exactly as ``len(out)`` calls of :func:`fenwick_sample` would, with the same random numbers.

    The descents run side by side, one tree level at a time, without branches on the tree's values: one
    descent is a chain of dependent loads and unpredictable branches, many side by side overlap. A leaf
    rejected by rounding (which :func:`fenwick_sample` redraws) restores the generator and draws one by one.
    """
    count, size = out.shape[0], tree.shape[0]
    total = fenwick_total(tree)
    if total <= 0.0:
        for position in range(count):
            out[position] = -1
        return
    top = 1
    while top * 2 < size:
        top *= 2
    saved = rng[slot]
    remaining = np.empty(count)
    for position in range(count):
        remaining[position] = next_unit(rng, slot) * total
        out[position] = 0
    last, step = size - 1, top
    while step > 0:
        for position in range(count):
            candidate = out[position] + step
            value = tree[min(candidate, last)]
            take = (candidate < size) & (value <= remaining[position])
            out[position] = candidate if take else out[position]
            remaining[position] -= value if take else 0.0
        step >>= 1
    for position in range(count):
        leaf = out[position]
        if leaf >= weights.shape[0] or weights[leaf] <= 0.0:
            rng[slot] = saved
            for again in range(count):
                out[again] = fenwick_sample(tree, weights, rng, slot)
            return


def target_distribution(counts: np.ndarray, alpha: float) -> np.ndarray:
    """The exact distribution the tree should sample from (for tests and diagnostics)."""
    weights = np.where(counts > 0, np.power(np.maximum(counts, 1).astype(np.float64), alpha), 0.0)
    return weights / weights.sum()
