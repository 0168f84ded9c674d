"""The nearest list of a row that was in a list before: its old list's neighbourhood first, exact by a bound.

Assigning a score key to its list is one product with every centroid's direction (2,000 at 1M items: ~4.5 µs
a row, most of a re-index and of the rows a checkpoint load must place again). A row that moved since it was
put in list ``p`` is most likely nearest to ``p`` or one of the ``NEIGHBOURHOOD`` centroids nearest ``p``. For
a unit direction ``x`` at angle ``a`` from centroid ``p``, every centroid outside that neighbourhood is at
least ``t - a`` away, ``t`` the angle from ``p`` to the nearest centroid outside it (triangle inequality on the
sphere). So when the best cosine inside the neighbourhood is at least ``cos(t - a)``, it is the best of all; the
rows for which the bound does not hold are assigned against every centroid. The answer is always exact.

Pure: numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NEIGHBOURHOOD", "neighbourhoods", "nearest_from"]

NEIGHBOURHOOD = 32  # centroids looked at first: the old list's nearest (itself included)
BLOCK = 1024  # centroids whose neighbourhoods are computed per product


def neighbourhoods(centroids: np.ndarray, size: int = NEIGHBOURHOOD) -> tuple[np.ndarray, np.ndarray]:
    """For each unit centroid (rows of ``centroids``): its ``size`` nearest (itself first), int64 (lists, size),
    and the angle to the nearest centroid outside them, float64 (lists,) (pi when there is none)."""
    lists = centroids.shape[0]
    size = min(size, lists)
    nearest = np.zeros((lists, size), np.int64)
    outside = np.full(lists, np.pi)
    for start in range(0, lists, BLOCK):
        closeness = centroids[start:start + BLOCK] @ centroids.T
        closeness[np.arange(closeness.shape[0]), np.arange(start, start + closeness.shape[0])] = np.inf  # itself first
        order = np.argsort(-closeness, axis=1)
        nearest[start:start + BLOCK] = order[:, :size]
        if size < lists:
            first_out = np.take_along_axis(closeness, order[:, size:size + 1], axis=1)[:, 0]
            outside[start:start + BLOCK] = np.arccos(np.clip(first_out, -1.0, 1.0))
    return nearest, outside


def nearest_from(directions: np.ndarray, previous: np.ndarray, centroids: np.ndarray, nearest: np.ndarray,
                 outside: np.ndarray, exact) -> np.ndarray:
    """The nearest centroid of each unit direction (n, d), given the list it was in before (``previous``, int64,
    every one valid), from ``neighbourhoods``' (``nearest``, ``outside``); ``exact(directions)`` assigns the rows
    the bound leaves open against every centroid. int64 (n,)."""
    lists = np.empty(directions.shape[0], np.int64)
    certain = np.zeros(directions.shape[0], bool)
    order = np.argsort(previous, kind="stable")
    groups, starts = np.unique(previous[order], return_index=True)
    for group, start, stop in zip(groups.tolist(), starts.tolist(), np.append(starts[1:], order.size).tolist()):
        members = order[start:stop]
        hood = nearest[group]
        closeness = directions[members] @ centroids[hood].T
        best = np.argmax(closeness, axis=1)
        best_cos = closeness[np.arange(members.size), best]
        angle = np.arccos(np.clip(closeness[:, 0], -1.0, 1.0))  # hood[0] is the old list itself
        lists[members] = hood[best]
        certain[members] = best_cos >= np.cos(np.maximum(0.0, outside[group] - angle)) + 1e-5  # rounding: not a tie
    open_rows = np.flatnonzero(~certain)
    if open_rows.size:
        lists[open_rows] = exact(directions[open_rows])
    return lists
