"""Incremental negative-sampling distribution: a Fenwick (binary indexed) tree of weights.

Item ``i`` is drawn with probability ``weight[i] / sum(weight)`` where ``weight = count ** alpha``
for items with a positive count and 0 otherwise (free, retired or never-seen rows are never drawn).
Updating one weight and drawing one sample both cost O(log V) (a draw of many samples descends for all
of them level by level, see :func:`fenwick_sample_many`); growing the table rebuilds it in
O(V) (amortised O(1) per item with capacity doubling). All functions are numba nopython.

While a replay debt is paid the counts do not move (replay trains, it does not count), so the same
distribution is drawn in O(1) from an alias table (Walker's method, built in O(V) by Vose's algorithm:
:func:`alias_build`, :func:`alias_sample_many`), as gensim draws from a cumulative table built once per
vocabulary: no descent, one cache line per draw. Its columns are the rows with a positive weight when it
was built, so a row free or retired then is never drawn; :class:`streamer.core.replay_debt.ReplayDebt`
decides when it is stale (rebuilt when rows were released or the counts moved, see there).
"""

from __future__ import annotations

import numba
import numpy as np

from streamer.core.random import next_u64, next_unit

__all__ = ["noise_weight", "fenwick_add", "fenwick_mark_ancestors", "fenwick_build", "fenwick_total", "fenwick_sample", "fenwick_sample_many",
           "set_weight", "alias_build", "alias_sample_many"]

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


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


@numba.njit(cache=True, nogil=True)
def alias_build(weights):
    """An alias table of ``weights`` (Vose): uint64 ``(columns, 2)``, one column per row with a positive weight;
    column c keeps its own row with probability ``table[c, 0] / 2**32`` and its alias otherwise, the two rows
    packed in ``table[c, 1]`` (own in the low 32 bits, alias in the high). Drawing a uniform column and then
    that coin gives row ``i`` with probability ``weights[i] / sum(weights)``."""
    rows = np.flatnonzero(weights > 0.0)
    columns = rows.shape[0]
    table = np.zeros((columns, 2), np.uint64)
    if columns == 0:
        return table
    scaled = weights[rows] * (columns / weights[rows].sum())
    keep, other = np.ones(columns), rows.copy()
    small, large = np.empty(columns, np.int64), np.empty(columns, np.int64)
    smalls, larges = 0, 0
    for column in range(columns):
        if scaled[column] < 1.0:
            small[smalls], smalls = column, smalls + 1
        else:
            large[larges], larges = column, larges + 1
    while smalls and larges:
        smalls, larges = smalls - 1, larges - 1
        light, heavy = small[smalls], large[larges]
        keep[light], other[light] = scaled[light], rows[heavy]
        scaled[heavy] = (scaled[heavy] + scaled[light]) - 1.0
        if scaled[heavy] < 1.0:
            small[smalls], smalls = heavy, smalls + 1
        else:
            large[larges], larges = heavy, larges + 1
    # what is left (larges, or smalls by rounding) keeps its own row: keep stays 1
    for column in range(columns):
        table[column, 0] = np.uint64(min(keep[column], 1.0) * 4294967296.0)
        table[column, 1] = np.uint64(rows[column]) | (np.uint64(other[column]) << _SHIFT32)
    return table


@numba.njit(cache=True, nogil=True)
def alias_sample_many(table, out, rng, slot):
    """Fill ``out`` with rows drawn from an :func:`alias_build` table (-1 if it is empty), one 64-bit random
    number a draw: the column from its high 32 bits (multiply-shift), the coin from its low 32 bits."""
    columns = np.uint64(table.shape[0])
    if columns == 0:
        out[:] = -1
        return
    for position in range(out.shape[0]):
        value = next_u64(rng, slot)
        column = ((value >> _SHIFT32) * columns) >> _SHIFT32
        packed = table[column, 1]
        own = (value & _LOW32) < table[column, 0]
        out[position] = np.int64(packed & _LOW32) if own else np.int64(packed >> _SHIFT32)


def target_distribution(counts: np.ndarray, alpha: float) -> np.ndarray:
    """The exact distribution the tree should sample from (for tests and diagnostics)."""
    weights = np.where(counts > 0, np.power(np.maximum(counts, 1).astype(np.float64), alpha), 0.0)
    return weights / weights.sum()
