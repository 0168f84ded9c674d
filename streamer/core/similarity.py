"""Ranking candidates for ``most_similar`` from the model's own vectors.

score(q, j) = dot_weight * in[q].out[j]  (the SGNS estimate of "j occurs next to q", a shifted PMI)
            + cosine_weight * cos(in[q], in[j])
            + popularity_weight * log(1 + count[j])
"""

from __future__ import annotations

import numpy as np

__all__ = ["score_candidates", "top_k", "normalise_rows"]


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def score_candidates(arrays, queries: np.ndarray, candidates: np.ndarray, settings) -> np.ndarray:
    """Scores (len(queries), len(candidates)) as float32."""
    query_in = arrays.vectors_in[queries]
    scores = np.zeros((queries.size, candidates.size), np.float32)
    if settings.dot_weight:
        scores += settings.dot_weight * (query_in @ arrays.vectors_out[candidates].T)
    if settings.cosine_weight:
        scores += settings.cosine_weight * (normalise_rows(query_in) @ normalise_rows(arrays.vectors_in[candidates]).T)
    if settings.popularity_weight:
        scores += np.float32(settings.popularity_weight) * np.log1p(arrays.counts[candidates]).astype(np.float32)
    return scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the ``k`` highest scores, best first (ties by index)."""
    k = min(k, scores.size)
    if k <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]
