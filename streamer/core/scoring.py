"""The full score of ``most_similar``, compiled: the one place it is computed for candidates.

score(q, j) = dot_weight * (in[q].out[j] + out[q].in[j]) / 2 + cosine_weight * cos(served[q], served[j])
            + popularity_weight * log(1 + recent_count[j])   (+ extra terms, e.g. the catalog's)

(:mod:`streamer.core.similarity` says why). It is computed as one inner product per pair: a candidate's
columns ``[out, in, unit served]`` (:func:`_fill_column`) against the query's ``[dot/2 * in, dot/2 * out,
cosine * unit served]`` (:func:`_query_keys`), started from the candidate's popularity term — the same layout
as the neighbour index's score keys. Candidates are scored in blocks of :data:`BLOCK` columns, each query
against a whole block (:func:`_score_block`: one loop over the 3d key floats, the candidates in SIMD lanes,
each pair summed in the same order wherever it is scored, so a pair scores the same bits in either kernel):

- :func:`score_matrix`: the scores of candidate rows for each query (a matrix; ``score_candidates``);
- :func:`select_top`: for a batch of queries, each with its own candidate rows (the index's) plus rows
  shared by every query (the popular items; every live row for the exact path), drop the query itself,
  rows that are not live and repeated rows, add the extra terms, and keep the best ``k`` (score
  descending, ties by row) — one compiled pass, no per-query Python. A block of shared rows is gathered
  once per batch and scored against every query while it sits in the cache (the exact path reads a million
  rows once per batch, not once per query).

The popularity count (decayed to ``now`` by ``half_life`` seconds; ``half_life`` 0: the cumulative count)
is :func:`prior_count`, which :func:`prior_counts` also serves to numpy callers.
Compiled with ``cache=True``: every callee lives in this file (numba keys its cache on the file).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["prior_counts", "score_matrix", "select_top", "BLOCK", "ITEM_LIVE_STATUS"]

BLOCK = 64  # candidate columns scored together: 3d x 64 floats (48 KB at d = 64) stay in the L1/L2 cache
ITEM_LIVE_STATUS = 2  # streamer.core.sgns.ITEM_LIVE (a literal: numba freezes globals at compile time anyway)
_SUMS = {"reassoc", "contract", "nsz", "arcp"}  # fastmath for the sums (SIMD dot products); -inf keeps its meaning


@numba.njit(cache=True, nogil=True, inline="always")
def prior_count(row, counts, recent, last_seen, half_life, now):
    """The prior's count of ``row``: cumulative (``half_life`` 0), or decayed by ``half_life`` up to ``now``."""
    if half_life <= 0.0:
        return np.float64(counts[row])
    return recent[row] * 2.0 ** (-max(now - last_seen[row], 0.0) / half_life)


@numba.njit(cache=True, nogil=True)
def prior_counts(rows, counts, recent, last_seen, half_life, now):
    out = np.empty(rows.size, np.float64)
    for position in range(rows.size):
        out[position] = prior_count(rows[position], counts, recent, last_seen, half_life, now)
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _unit_served(row, vectors_in, vectors_out, out, offset, scale_by):
    """out[offset:offset + d] = scale_by * the row's unit served vector (in + out; 0 stays 0)."""
    size = vectors_in.shape[1]
    norm = np.float32(0.0)
    for j in range(size):
        value = vectors_in[row, j] + vectors_out[row, j]
        out[offset + j] = value
        norm += value * value
    scale = scale_by / max(np.float32(math.sqrt(norm)), np.float32(1e-12))
    for j in range(size):
        out[offset + j] *= scale


@numba.njit(cache=True, nogil=True, inline="always")
def _fill_column(row, vectors_in, vectors_out, counts, recent, last_seen, half_life, now, popularity, keys,
                 column, priors):
    """Line ``column`` of ``keys`` (BLOCK, 3d) := the row's ``[out, in, unit served]``; priors[column] := its
    popularity term."""
    size = vectors_in.shape[1]
    for j in range(size):
        keys[column, j] = vectors_out[row, j]
        keys[column, size + j] = vectors_in[row, j]
    _unit_served(row, vectors_in, vectors_out, keys[column], 2 * size, np.float32(1.0))
    priors[column] = popularity * np.float32(math.log1p(prior_count(row, counts, recent, last_seen, half_life, now)))


@numba.njit(cache=True, nogil=True, fastmath=_SUMS)
def _query_keys(queries, vectors_in, vectors_out, weights, scales):
    """(q, 3d) float32: each query's ``[dot/2 * in, dot/2 * out, cosine * unit served]``, times its scale."""
    size = vectors_in.shape[1]
    keys = np.zeros((queries.size, 3 * size), np.float32)
    for position in range(queries.size):
        query = queries[position]
        scale = scales[position] if scales.size else np.float32(1.0)
        for j in range(size):
            keys[position, j] = scale * weights[0] * vectors_in[query, j]
            keys[position, size + j] = scale * weights[0] * vectors_out[query, j]
        _unit_served(query, vectors_in, vectors_out, keys[position], 2 * size, scale * weights[1])
    return keys


@numba.njit(cache=True, nogil=True, inline="always")
def _score_block(query_key, keys, priors, count, scores):
    """scores[:count] := priors + keys[:count] . query_key."""
    for line in range(count):
        total = np.float32(0.0)
        for j in range(keys.shape[1]):
            total += query_key[j] * keys[line, j]
        scores[line] = priors[line] + total


@numba.njit(cache=True, nogil=True, inline="always")
def _score_shared_block(query_keys, keys, priors, count, scores):
    """scores[:, :count] := priors + query_keys . keys[:count].T, four queries per pass over a key line (each
    line is loaded once for four queries)."""
    quads = query_keys.shape[0] - query_keys.shape[0] % 4
    for first in range(0, quads, 4):
        for line in range(count):
            total0, total1 = np.float32(0.0), np.float32(0.0)
            total2, total3 = np.float32(0.0), np.float32(0.0)
            for j in range(keys.shape[1]):
                value = keys[line, j]
                total0 += query_keys[first, j] * value
                total1 += query_keys[first + 1, j] * value
                total2 += query_keys[first + 2, j] * value
                total3 += query_keys[first + 3, j] * value
            scores[first, line], scores[first + 1, line] = priors[line] + total0, priors[line] + total1
            scores[first + 2, line], scores[first + 3, line] = priors[line] + total2, priors[line] + total3
    for position in range(quads, query_keys.shape[0]):
        _score_block(query_keys[position], keys, priors, count, scores[position])


@numba.njit(cache=True, nogil=True, fastmath=_SUMS)
def score_matrix(vectors_in, vectors_out, counts, recent, last_seen, weights, half_life, now, queries, candidates):
    """Scores (q, m) float32 of ``candidates`` ((q, m): one list per query, or (1, m): shared); -inf for row -1."""
    query_keys = _query_keys(queries, vectors_in, vectors_out, weights, np.zeros(0, np.float32))
    out = np.full((queries.size, candidates.shape[1]), -np.inf, np.float32)
    keys = np.zeros((BLOCK, 3 * vectors_in.shape[1]), np.float32)
    priors, scores = np.zeros(BLOCK, np.float32), np.zeros(BLOCK, np.float32)
    for position in range(queries.size):
        line = min(position, candidates.shape[0] - 1)
        for start in range(0, candidates.shape[1], BLOCK):
            count = min(BLOCK, candidates.shape[1] - start)
            for column in range(count):
                row = max(candidates[line, start + column], 0)
                _fill_column(row, vectors_in, vectors_out, counts, recent, last_seen, half_life, now, weights[2], keys,
                             column, priors)
            _score_block(query_keys[position], keys, priors, count, scores)
            for column in range(count):
                if candidates[line, start + column] >= 0:
                    out[position, start + column] = scores[column]
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _offer(rows, scores, filled, row, score):
    """Insert (row, score) into the sorted best list (score descending, ties by row); returns its new fill."""
    size = rows.size
    if filled == size:
        last = size - 1
        if score < scores[last] or (score == scores[last] and row > rows[last]):
            return filled
        position = last
    else:
        position = filled
        filled += 1
    while position > 0 and (score > scores[position - 1] or (score == scores[position - 1] and row < rows[position - 1])):
        rows[position], scores[position] = rows[position - 1], scores[position - 1]
        position -= 1
    rows[position], scores[position] = row, score
    return filled


@numba.njit(cache=True, nogil=True, inline="always")
def _offer_block(rows, extra, position, columns, count, scores, best_rows, best_scores, filled):
    """Offer the block's ``count`` scored rows (``columns``: their column in ``extra``, the extra terms) to the query
    at ``position``. (The query's best lists are taken once per block: a view costs a reference count.)"""
    query_rows, query_scores, fill = best_rows[position], best_scores[position], filled[position]
    last = query_rows.size - 1
    for column in range(count):
        score = scores[column]
        if extra.shape[0]:
            score += extra[position, columns[column]]
        if score > -np.inf and (fill <= last or score >= query_scores[last]):
            fill = _offer(query_rows, query_scores, fill, rows[column], score)
    filled[position] = fill


@numba.njit(cache=True, nogil=True, fastmath=_SUMS)
def select_top(vectors_in, vectors_out, counts, recent, last_seen, status, weights, half_life, now,
               queries, per_query, shared, extra_per_query, extra_shared, k, marks, scales):
    """The best ``k`` candidates of each query: rows int64 (q, k) (-1 where fewer) and scores float32 (q, k)
    (-inf there), best first. ``per_query`` (q, m) rows (-1: none), ``shared`` (n,) unique rows;
    ``extra_*`` the extra terms in their shapes, or (0, 0) for none; ``weights`` (dot/2, cosine, popularity);
    ``marks``: uint8 scratch, one per row, all 0 (left all 0); ``scales`` float32 (q,): each query's factor on
    its dot and cosine terms (a rare query's vectors count for less, docs/catalog.md), or (0,) for 1 everywhere."""
    best_rows = np.full((queries.size, k), -1, np.int64)
    best_scores = np.full((queries.size, k), -np.inf, np.float32)
    if k <= 0:
        return best_rows, best_scores
    filled = np.zeros(queries.size, np.int64)
    query_keys = _query_keys(queries, vectors_in, vectors_out, weights, scales)
    keys = np.zeros((BLOCK, 3 * vectors_in.shape[1]), np.float32)
    priors, scores = np.zeros(BLOCK, np.float32), np.zeros(BLOCK, np.float32)
    rows, columns = np.zeros(BLOCK, np.int64), np.zeros(BLOCK, np.int64)
    block_scores = np.zeros((queries.size, BLOCK), np.float32)
    for row in shared:
        marks[row] = 2  # scored with the shared rows, not in the query's own list
    for position in range(queries.size):
        query = queries[position]
        marks[query] |= 1
        count = 0
        for column in range(per_query.shape[1] + 1):
            row = per_query[position, column] if column < per_query.shape[1] else -1
            if row >= 0 and marks[row] == 0 and status[row] == ITEM_LIVE_STATUS:
                marks[row] = 1
                _fill_column(row, vectors_in, vectors_out, counts, recent, last_seen, half_life, now, weights[2], keys,
                             count, priors)
                rows[count], columns[count] = row, column
                count += 1
            if count == BLOCK or (column == per_query.shape[1] and count):
                _score_block(query_keys[position], keys, priors, count, scores)
                _offer_block(rows, extra_per_query, position, columns, count, scores, best_rows, best_scores, filled)
                count = 0
        for column in range(per_query.shape[1]):  # unmark, the query last (it may be a shared row)
            row = per_query[position, column]
            if row >= 0 and marks[row] == 1:
                marks[row] = 0
        marks[query] &= 2
    for row in shared:
        marks[row] = 0
    for start in range(0, shared.size, BLOCK):
        count = 0
        for offset in range(start, min(shared.size, start + BLOCK)):
            if status[shared[offset]] == ITEM_LIVE_STATUS:
                _fill_column(shared[offset], vectors_in, vectors_out, counts, recent, last_seen, half_life, now,
                             weights[2], keys, count, priors)
                rows[count], columns[count] = shared[offset], offset
                count += 1
        _score_shared_block(query_keys, keys, priors, count, block_scores)
        for position in range(queries.size):
            for column in range(count):
                if rows[column] == queries[position]:
                    block_scores[position, column] = -np.inf  # the query itself
            _offer_block(rows, extra_shared, position, columns, count, block_scores[position], best_rows, best_scores,
                         filled)
    return best_rows, best_scores
