""""Changed means moved": which changed rows are worth publishing, and which lists a release makes stale.

Every row an SGNS step touches is marked ``DIRTY_SERVED`` — the target, the source and each negative
sample — though a negative sample's served vector barely moves. :class:`PublishedVectors` keeps the
served vector each row had when it was last taken for publishing (half precision) and when that was
(the caller's clock: the core has none), and takes a changed row only when

- its served vector moved more than ``threshold`` (relative: ``|now - published| > threshold * |published|``),
- or it was never published,
- or it changed at all and was last published ``max_age`` seconds ago or more (a staleness bound: small
  changes are published at least that often, also when the row changes no more).

:class:`ListedRows` remembers the rows of each published neighbour list, so that the lists holding a
released (retired, evicted, expired) row are known and can be refreshed.

>>> import numpy as np
>>> published = PublishedVectors(vector_size=2)
>>> served = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
>>> published.take(np.array([0, 1]), served, threshold=0.1, max_age=60.0, now=0.0).tolist()
[0, 1]
>>> published.take(np.array([0, 1]), served + [[0.05, 0], [0.5, 0]], threshold=0.1, max_age=60.0, now=1.0).tolist()
[1]
>>> published.take(np.zeros(0, np.int64), served[:0], threshold=0.1, max_age=60.0, now=61.0).tolist()
[0]
"""

from __future__ import annotations

import numpy as np

from streamer.core.neighbours import moved_rows

__all__ = ["ListedRows", "PublishedVectors"]


def _grown(array: np.ndarray, rows: int, fill=0) -> np.ndarray:
    if array.shape[0] >= rows:
        return array
    grown = np.full((max(rows, 2 * array.shape[0]),) + array.shape[1:], fill, array.dtype)
    grown[:array.shape[0]] = array
    return grown


class PublishedVectors:
    """The last published served vector and time of each row; ``take`` picks the rows to publish now."""

    def __init__(self, vector_size: int):
        self.vector = np.zeros((0, vector_size), np.float16)
        self.published_at = np.zeros(0, np.float64)
        self.known = np.zeros(0, bool)  # published at least once (since this engine was built or loaded)
        self.waiting = np.zeros(0, bool)  # changed, below the threshold, not published yet

    def _fit(self, rows: int) -> None:
        self.vector = _grown(self.vector, rows)
        self.published_at = _grown(self.published_at, rows)
        self.known, self.waiting = _grown(self.known, rows, False), _grown(self.waiting, rows, False)

    def take(self, rows: np.ndarray, served: np.ndarray, threshold: float, max_age: float, now: float) -> np.ndarray:
        """Of the changed ``rows`` (their ``served`` vectors now), the ones to publish, plus waiting rows
        whose last publication is ``max_age`` old; both are recorded as published at ``now``."""
        self._fit(int(rows.max()) + 1 if rows.size else 0)
        chosen = np.ones(rows.size, bool)
        known = self.known[rows]
        if threshold > 0 and known.any():
            reference = self.vector[rows[known]].astype(np.float32)
            chosen[known] = (moved_rows(served[known], reference, threshold)
                             | (now - self.published_at[rows[known]] >= max_age))
        self.waiting[rows[~chosen]] = True
        taken, vectors = rows[chosen], served[chosen]
        self._record(taken, vectors, now)
        overdue = np.flatnonzero(self.waiting[:self.known.size] & (now - self.published_at[:self.known.size] >= max_age))
        self.waiting[overdue] = False
        self.published_at[overdue] = now  # their vector is read when the snapshot is taken: recorded by the caller
        return np.union1d(taken, overdue)

    def _record(self, rows: np.ndarray, vectors: np.ndarray, now: float) -> None:
        self.vector[rows] = vectors
        self.published_at[rows] = now
        self.known[rows] = True
        self.waiting[rows] = False

    def record(self, rows: np.ndarray, vectors: np.ndarray, now: float | None = None) -> None:
        """The vectors taken for ``rows`` (overdue rows, whose vectors ``take`` did not see); with ``now``:
        rows known to be published as they are (when publishing starts on a loaded engine)."""
        self._fit(int(rows.max()) + 1 if rows.size else 0)
        if now is None:
            self.vector[rows] = vectors
        else:
            self._record(rows, vectors, now)

    def forget(self, rows: np.ndarray) -> None:
        """Released rows: the next item in them is new."""
        rows = rows[rows < self.known.size]
        self.known[rows] = False
        self.waiting[rows] = False


class ListedRows:
    """The rows of the neighbour list last published for each row (-1: none)."""

    def __init__(self):
        self.rows = np.full((0, 0), -1, np.int32)

    def record(self, queries: np.ndarray, lists: np.ndarray) -> None:
        if lists.shape[1] != self.rows.shape[1]:
            self.rows = np.full((self.rows.shape[0], lists.shape[1]), -1, np.int32)
        if queries.size:
            self.rows = _grown(self.rows, int(queries.max()) + 1, -1)
            self.rows[queries] = lists

    def holders(self, released: np.ndarray) -> np.ndarray:
        """Rows whose list holds one of ``released`` (their own lists are forgotten)."""
        if released.size == 0 or self.rows.size == 0:
            return np.zeros(0, np.int64)
        mask = np.zeros(max(self.rows.shape[0], int(released.max()) + 1) + 1, bool)
        mask[released] = True
        listed = self.rows
        hit = np.flatnonzero(mask[np.where(listed < 0, mask.size - 1, listed)].any(axis=1))
        inside = released[released < listed.shape[0]]
        listed[inside] = -1
        return np.setdiff1d(hit, released)
