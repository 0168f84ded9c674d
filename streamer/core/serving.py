"""The reading side of :class:`~streamer.core.trainer.Trainer`: ``most_similar``, and what changed for publishing.

- ``most_similar`` / ``most_similar_many`` answer from the candidate sources of
  :mod:`streamer.core.similar_items` (neighbour index ∪ popular items ∪ ...) with the full score, or by
  brute force over every live item with ``exact=True``.
- ``take_changed`` hands the publisher the items whose served vector changed; with a ``threshold`` only
  those that moved (:mod:`streamer.core.publishing`: "changed means moved", with a staleness bound).
- ``neighbour_lists`` is ``most_similar_many`` for publishing: it remembers each list's rows, so that
  ``take_lists_due`` can name the items whose published list holds an item released since.
"""

from __future__ import annotations

import math

import numpy as np

from streamer.core.publishing import ListedRows, PublishedVectors
from streamer.core.sgns import DIRTY_SERVED, ITEM_LIVE
from streamer.core.similar_items import SimilarItems

__all__ = ["Serving"]

EXACT_CHUNK = 32  # queries scored against every item together (their extra terms: 32 x items floats)
QUERY_CHUNK = 256  # queries scored together (bounds the candidate matrices: 256 x 1,088 x vector_size floats)


class Serving:
    """Mixed into Trainer (uses its ``_items``, ``settings``, ``_watermark``, ``_event_count``)."""

    def _reset_serving(self) -> None:
        self._similar = SimilarItems(self.settings, clock=lambda: self._watermark)
        self._published = PublishedVectors(self.settings.vector_size)
        self._listed = ListedRows()
        self._lists_due: set[int] = set()
        self._publishing_started = False
        self._index_behind = False  # a take did not follow (take_changed(follow=False)) and none followed since

    def _apply_releases(self) -> None:
        """Rows released since the last look leave the index and the published state; the rows whose
        published list holds one of them are due."""
        freed = self._items.freed
        if not freed:
            return
        rows = np.unique(np.array(freed, np.int64))
        freed.clear()
        self._similar.forget_rows(rows)
        self._published.forget(rows)
        self._lists_due.update(self._listed.holders(rows).tolist())
    def most_similar(self, item: str, k: int = 10, exact: bool = False) -> list[tuple[str, float]]:
        """Top-``k`` items for ``item`` by the model's own scores; never the item itself nor retired items.

        By default the candidates come from the neighbour index and the most popular items
        (:mod:`streamer.core.similar_items`) and are ranked by the full score; ``exact=True`` scores every
        live item (brute force: for tests and for measuring the index's recall)."""
        return self.most_similar_many([item], k, exact)[0]

    def most_similar_many(self, items: list[str], k: int = 10, exact: bool = False) -> list[list[tuple[str, float]]]:
        """``most_similar`` for many queries at once (unknown queries give [])."""
        return self._answers(items, k, self._exact_top if exact else self._indexed_top)

    def _answers(self, items: list[str], k: int, top) -> list[list[tuple[str, float]]]:
        query_rows = [self._live_row(item) for item in items]
        known = [index for index, row in enumerate(query_rows) if row is not None]
        results: list[list[tuple[str, float]]] = [[] for _ in items]
        if not known or k <= 0:
            return results
        queries = np.array([query_rows[index] for index in known], np.int64)
        rows, scores = top(queries, k)
        ids = self._items.ids
        for index, query_rows, query_scores in zip(known, rows.tolist(), scores.tolist()):  # one tolist per matrix
            results[index] = [(ids[row], score) for row, score in zip(query_rows, query_scores) if row >= 0]
        return results

    def sync_index(self) -> int:
        """Bring the neighbour index up to date with the vectors (done before every indexed query anyway);
        returns the rows (re)indexed. A daemon calls it once per flush so queries find little to do."""
        self._apply_releases()
        return self._similar.sync(self._items.arrays, len(self._items.ids))

    def _indexed_lists(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For publishing: the index as ``take_changed`` last left it (it follows what is published)."""
        return self._indexed_top(queries, k, sync=not self._similar.built)

    def _indexed_top(self, queries: np.ndarray, k: int, sync: bool = True) -> tuple[np.ndarray, np.ndarray]:
        self._apply_releases()
        arrays, similar, count = self._items.arrays, self._similar, len(self._items.ids)
        if sync:
            similar.sync(arrays, count)
        similar.refresh_popular(arrays, count, self.settings, self._watermark, self._event_count)
        parts = [similar.top(arrays, queries[start:start + QUERY_CHUNK], k, self.settings, self._watermark)
                 for start in range(0, queries.size, QUERY_CHUNK)]
        return np.vstack([rows for rows, _ in parts]), np.vstack([scores for _, scores in parts])

    def _exact_top(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every live row is a candidate of every query (the same compiled score and selection as the index's)."""
        candidates, none = self._items.live_rows(), np.zeros((0, 0), np.int64)
        parts = [self._similar.best(self._items.arrays, chunk, none.reshape(chunk.size, 0), candidates, k, self.settings,
                                    self._watermark)
                 for chunk in (queries[start:start + EXACT_CHUNK] for start in range(0, queries.size, EXACT_CHUNK))]
        return np.vstack([rows for rows, _ in parts]), np.vstack([scores for _, scores in parts])

    def neighbour_lists(self, items: list[str], k: int) -> list[list[tuple[str, float]]]:
        """``most_similar_many(items, k)`` for publishing: the lists' rows are remembered (see ``take_lists_due``)."""
        self._apply_releases()
        rows = [self._live_row(item) for item in items]
        answers = self._answers(items, k, self._indexed_lists)
        known = [index for index, row in enumerate(rows) if row is not None]
        if known:
            matrix = np.full((len(known), k), -1, np.int32)
            item_rows = self._items.rows
            for position, index in enumerate(known):
                listed = [item_rows[item] for item, _ in answers[index]]
                matrix[position, :len(listed)] = listed
            self._listed.record(np.array([rows[index] for index in known], np.int64), matrix)
        return answers

    def take_lists_due(self) -> set[str]:
        """Live items whose published list holds an item released (retired, evicted, expired) since."""
        self._apply_releases()
        due, self._lists_due = self._lists_due, set()
        ids, status = self._items.ids, self._items.arrays.status
        return {ids[row] for row in due if row < len(ids) and status[row] == ITEM_LIVE}

    def take_changed(self, threshold: float = 0.0, max_age: float = math.inf, now: float = 0.0,
                     follow: bool = True) -> set[str]:
        """Ids whose served vector changed since the last call (trained, created, initialised).

        ``threshold`` > 0: only those that moved more than ``threshold`` (relative) since they were last
        taken, were never taken, or were taken ``max_age`` seconds before ``now`` (the caller's clock) and
        changed since; the others wait (:class:`streamer.core.publishing.PublishedVectors`). Clears only the
        ``DIRTY_SERVED`` bit of the rows it looked at. The neighbour index follows what is taken; ``follow=False``
        leaves it behind (their ``DIRTY_INDEX`` bits set: a take while a replay debt still moves every row costs a
        third as much), and the next following take catches up (:meth:`_follow`)."""
        self._apply_releases()
        count = len(self._items.ids)
        arrays = self._items.arrays
        dirty = arrays.dirty
        if threshold > 0 and not self._publishing_started:
            self._publishing_started = True  # rows not dirty now are as last published (e.g. after a load)
            clean = np.flatnonzero((arrays.status[:count] == ITEM_LIVE) & ((dirty[:count] & DIRTY_SERVED) == 0))
            self._published.record(clean, self._served(clean), now)
        rows = np.flatnonzero(dirty[:count] & DIRTY_SERVED)
        dirty[rows] &= np.uint8(~DIRTY_SERVED & 0xFF)
        rows = rows[arrays.status[rows] == ITEM_LIVE]
        if threshold > 0:
            served = self._served(rows)
            taken = self._published.take(rows, served, threshold, max_age, now)
            overdue = np.setdiff1d(taken, rows)
            overdue = overdue[arrays.status[overdue] == ITEM_LIVE]
            overdue_served = self._served(overdue)
            self._published.record(overdue, overdue_served)
            moved = np.isin(rows, taken)
            # the index follows what is published: the moved rows are re-indexed now, the others are within
            # ``threshold`` of their indexed vector (the candidates are re-scored exactly anyway)
            self._follow(follow, np.concatenate([rows[moved], overdue]), rows[~moved])
            rows = np.union1d(rows[moved], overdue)
        else:
            self._follow(follow, rows, rows[:0])
        ids = self._items.ids
        return {ids[row] for row in rows.tolist()}

    def held_back(self) -> list[str]:
        """Live items a publish threshold holds back (changed since they were last taken, within the threshold):
        a daemon keeps them pending in its checkpoints, so that one restarted after a kill publishes them."""
        waiting = np.flatnonzero(self._published.waiting)
        count, status = len(self._items.ids), self._items.arrays.status
        waiting = waiting[waiting < count]
        ids = self._items.ids
        return [ids[row] for row in waiting[status[waiting] == ITEM_LIVE].tolist()]

    def _follow(self, follow: bool, moved: np.ndarray, unmoved: np.ndarray) -> None:
        """Re-index the ``moved`` rows a take publishes (``unmoved``: changed, within the threshold of what the index
        holds). Not ``follow``: nothing now. The first take that follows again after one that did not re-indexes the
        moved rows, then catches up with every row still marked ``DIRTY_INDEX`` by the index's own rule (the
        ``unmoved`` ones too: a row published by a take that did not follow may be far from its indexed key)."""
        if not follow:
            self._index_behind = True
            return
        arrays, behind = self._items.arrays, self._index_behind and self._similar.built  # not built: built at a query
        self._index_behind = False
        self._similar.follow(arrays, moved, unmoved[:0] if behind else unmoved)
        if behind:
            self._similar.sync(arrays, len(self._items.ids))
