"""The served vectors and the ``most_similar`` ranking, both from the model's own input/output vectors.

Served vector of item j: ``in[j] + out[j]`` (the "W + C" sum of GloVe / Levy et al. 2015). Its cosine
mixes first-order similarity (``in·out``: "occurs next to") with second-order similarity (``in·in``,
``out·out``: "occurs in the same contexts"), which ranks next items far better than ``in`` alone.

score(q, j) = dot_weight * (in[q].out[j] + out[q].in[j]) / 2   (SGNS's shifted PMI of q and j, symmetrised)
            + cosine_weight * cos(served[q], served[j])
            + popularity_weight * log(1 + recent_count[j])

``recent_count`` is the item's count with each event decayed by ``popularity_half_life`` seconds of event
time (None: the plain cumulative count): the prior follows what is popular now, so items that arrived
recently and are taking off (MovieLens' new releases) are not buried under the all-time favourites.

With noise ∝ count**alpha the SGNS optimum has in[q].out[j] ≈ log p(j|q) - alpha·log count[j] + const,
so ``popularity_weight`` = alpha turns the dot product back into an estimate of log p(j|q). That
first-order estimate alone is noisy for a 64-dimensional model (yoochoose HR@10 0.471 against 0.480 for
exact co-occurrence counts); a heavy cosine term (default 8 against a dot weight of 1) smooths it with
second-order similarity and a prior a little above alpha (1.25) measured best on all three shared sets.
"""

from __future__ import annotations

import numpy as np

from streamer.core.scoring import prior_counts, score_matrix

__all__ = ["popularity_counts", "score_candidates", "score_keys", "score_queries", "served_vectors", "top_k",
           "normalise_rows", "key_direction", "key_size",
           "prior_decay", "score_weights"]


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def served_vectors(arrays, rows: np.ndarray) -> np.ndarray:
    """The vectors ``Trainer.vectors()`` serves for ``rows``: input + output, float32 (a new array)."""
    return np.add(arrays.vectors_in[rows], arrays.vectors_out[rows], dtype=np.float32)


def prior_decay(half_life: float | None, now: float) -> float:
    """The half-life the compiled prior takes (:func:`streamer.core.scoring.prior_count`): 0 for the cumulative
    count (no half-life, or no event time yet)."""
    return 0.0 if half_life is None or not np.isfinite(now) else float(half_life)


def popularity_counts(arrays, candidates: np.ndarray, half_life: float | None, now: float) -> np.ndarray:
    """The prior's count of each candidate: cumulative, or decayed by ``half_life`` seconds up to ``now``."""
    rows = np.ascontiguousarray(candidates, np.int64)
    return prior_counts(rows, arrays.counts, arrays.recent, arrays.last_seen, prior_decay(half_life, now), float(now))


def score_weights(settings) -> np.ndarray:
    """(dot_weight / 2, cosine_weight, popularity_weight) as float32: the weights the compiled score takes."""
    return np.array([settings.dot_weight / 2.0, settings.cosine_weight, settings.popularity_weight], np.float32)


def score_candidates(arrays, queries: np.ndarray, candidates: np.ndarray, settings, now: float = np.inf) -> np.ndarray:
    """Scores (len(queries), len(candidates)) as float32; ``now`` is the event time the prior decays to.

    ``candidates`` is one array of rows shared by every query, or a (len(queries), m) matrix of rows, one
    candidate list per query (the index's candidates); either way the same score, computed by
    :func:`streamer.core.scoring.score_matrix` (row -1 scores -inf)."""
    queries = np.ascontiguousarray(queries, np.int64)
    matrix = np.ascontiguousarray(np.atleast_2d(candidates), np.int64)
    return score_matrix(arrays.vectors_in, arrays.vectors_out, arrays.counts, arrays.recent, arrays.last_seen,
                        score_weights(settings), prior_decay(settings.popularity_half_life, now), float(now),
                        queries, matrix)


KEY_ALIGNMENT = 16  # keys are padded with zeros to a multiple of 16 floats: faiss's SIMD scan needs it (3d + 1 is odd)


def key_size(vector_size: int) -> int:
    """Floats in a score key: 3d + 1, padded to a multiple of :data:`KEY_ALIGNMENT`."""
    return -(-(3 * vector_size + 1) // KEY_ALIGNMENT) * KEY_ALIGNMENT


def key_direction(vector_size: int) -> slice:
    """Where the unit served vector sits in a score key (:func:`score_keys`)."""
    return slice(2 * vector_size, 3 * vector_size)


def score_keys(arrays, rows: np.ndarray, settings, now: float = np.inf) -> np.ndarray:
    """Each row's *score key* (float32 (n, key_size(d))): ``[out, in, unit served, log(1 + recent count), 0...]``.

    ``score_queries(q) @ score_keys(j)`` is :func:`score_candidates`'s full score of j for q (the same three
    terms, weights in the query), so an inner-product index over the keys searches the full score itself,
    not a cosine that knows nothing of the dot or popularity terms. The popularity part is the count decayed to
    ``now``: the key ages a little until the row is indexed again (the candidates are re-scored exactly)."""
    rows = np.asarray(rows, np.int64)
    size = arrays.vectors_in.shape[1]
    keys = np.zeros((rows.size, key_size(size)), np.float32)
    keys[:, :size] = arrays.vectors_out[rows]
    keys[:, size:2 * size] = arrays.vectors_in[rows]
    keys[:, key_direction(size)] = normalise_rows(served_vectors(arrays, rows))
    keys[:, 3 * size] = np.log1p(popularity_counts(arrays, rows, settings.popularity_half_life, now))
    return keys


def score_queries(arrays, rows: np.ndarray, settings) -> np.ndarray:
    """The query side of :func:`score_keys`: ``[dot/2 * in, dot/2 * out, cosine * unit served, popularity]``."""
    rows = np.asarray(rows, np.int64)
    size = arrays.vectors_in.shape[1]
    queries = np.zeros((rows.size, key_size(size)), np.float32)
    half_dot = np.float32(settings.dot_weight / 2.0)
    queries[:, :size] = half_dot * arrays.vectors_in[rows]
    queries[:, size:2 * size] = half_dot * arrays.vectors_out[rows]
    queries[:, key_direction(size)] = np.float32(settings.cosine_weight) * normalise_rows(served_vectors(arrays, rows))
    queries[:, 3 * size] = np.float32(settings.popularity_weight)
    return queries


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the ``k`` highest scores, best first (ties by index)."""
    k = min(k, scores.size)
    if k <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]
