"""``most_similar`` at catalog scale: candidate sources → the full score → top k.

The full score (:mod:`streamer.core.scoring`) has a popularity term that the cosine of the served vectors
knows nothing about, so no cosine index alone finds its top k (measured: 22% of the exact top 10 on a Zipf
catalog). :class:`SimilarItems` therefore asks several *candidate sources* and re-scores their union exactly,
in one compiled pass per batch of queries (:func:`streamer.core.scoring.select_top`):

- ``index``: the ``index_candidates`` best rows of an inner-product index over *score keys*
  (:func:`~streamer.core.similarity.score_keys`: the query's key times an item's key is the full score, so the
  index ranks its lists by the dot, cosine and popularity terms together, not by the cosine alone); its
  inverted lists are the k-means lists of the served vectors' directions
  (:class:`~streamer.core.neighbours.NeighbourIndex` with ``direction``);
- ``popular``: the ``popular_candidates`` items with the highest prior (decayed count) right now, shared
  by every query (recomputed once events equal to ``popular_refresh`` of the catalog, 1%, arrived since:
  an O(items) pass, every 10,000 events at 1M items; scored with one matrix product);

and any source added to :attr:`SimilarItems.sources`: a callable ``(engine_arrays, query_rows)`` returning
either (len(query_rows), m) rows, one list per query, or (n,) rows shared by every query; -1 for none.
Candidates that are the query itself, repeated, or not live are dropped. :attr:`SimilarItems.terms` holds extra
score terms, callables ``(query_rows, candidate_rows)`` -> a (q, n) float32 matrix added to the full score, or
None (the catalog's attribute term, :mod:`streamer.core.attributes`); the kernel adds their sum before it
chooses the top k. :attr:`SimilarItems.query_scales` may scale each query's dot and cosine terms (a rare query
of an informative catalog attribute, :meth:`streamer.core.attributes.AttributeAffinity.vector_scales`); the index
source still searches with the full weights (its candidates are re-scored exactly).

The index follows the vectors incrementally (:meth:`SimilarItems.sync`, before each query batch): rows
whose ``DIRTY_INDEX`` bit is set are re-indexed when their key moved by more than ``move_threshold``
(relative, in any of its parts: the input/output vectors, the served direction, the log count) since it was
indexed, released rows leave it, and it is rebuilt when it says
it is stale, or after a checkpoint load: a checkpoint keeps the lists' centroids and each row's list
(``index_list``, :mod:`streamer.core.index_state`), so that rebuild puts the rows back in their lists without
k-means or assigning them. The index's vectors may lag a little; the scores never do (they are computed from
the live vectors).
"""

from __future__ import annotations

import numpy as np

from streamer.core.list_fit import fit_sample, still_fits
from streamer.core.neighbours import NeighbourIndex, moved_rows
from streamer.core.sgns import DIRTY_INDEX, ITEM_LIVE
from streamer.core.scoring import select_top
from streamer.core.similarity import (key_direction, key_size, popularity_counts, prior_decay, score_keys, score_queries,
                                      score_weights)

__all__ = ["SimilarItems"]


class SimilarItems:
    """The candidate sources and the neighbour index of one engine."""

    def __init__(self, settings, clock=lambda: np.inf, index_candidates: int = 32, popular_candidates: int = 1024,
                 move_threshold: float = 0.05, popular_refresh: float = 0.01, probes: int = 4, **index_options):
        """``settings``: the engine's (weights, half-life, vector size, seed); ``clock``: the event time the
        keys' popularity decays to (the engine's watermark; never the wall clock); ``probes``: lists scanned per
        query (4: recall@10 0.9805 on a trained 200k-item model, as with 6 or 8, and 1.0 at 1M synthetic items;
        docs/neighbours.md)."""
        size = settings.vector_size
        self.settings, self.clock = settings, clock
        self.index = NeighbourIndex(key_size(size), seed=settings.seed, direction=key_direction(size), probes=probes,
                                    **index_options)
        self.index_candidates, self.popular_candidates = index_candidates, popular_candidates
        self.move_threshold, self.popular_refresh = move_threshold, popular_refresh
        self.sources = [self._index_source, self._popular_source]
        self.terms: list = []
        self.query_scales = None  # callable (query rows) -> float32 (q,) factors on their vector terms, or None
        self.built = False
        self._indexed = np.zeros(0, bool)  # per row: in the index
        self._popular: np.ndarray | None = None
        self.index_size_hint = 0  # live items at the last popular refresh
        self._popular_at = -1
        self._marks = np.zeros(0, np.uint8)  # the scoring kernel's scratch: one byte per row, all 0

    # ---- keeping the index up to date -----------------------------------------------------------------

    def sync(self, arrays, row_count: int) -> int:
        """Apply what changed since the last call (see the module docstring); returns rows (re)indexed."""
        if not self.built:
            return self.rebuild(arrays, row_count)
        if self._indexed.size < row_count:
            self._indexed = np.concatenate([self._indexed, np.zeros(row_count - self._indexed.size, bool)])
        status = arrays.status[:row_count]
        gone = np.flatnonzero(self._indexed[:row_count] & (status != ITEM_LIVE))
        if gone.size:
            self.index.remove(gone)
            self._indexed[gone] = False
        dirty = arrays.dirty
        rows = np.flatnonzero(dirty[:row_count] & DIRTY_INDEX)
        if rows.size == 0:
            return 0
        dirty[rows] &= np.uint8(~DIRTY_INDEX & 0xFF)
        rows = rows[status[rows] == ITEM_LIVE]
        current = self._keys(arrays, rows)
        known = self._indexed[rows]
        moved = ~known
        if known.any():
            moved[known] = self._moved(current[known], self.index.stored(rows[known]))
        chosen = rows[moved]
        arrays.index_list[chosen] = self.index.update(chosen, current[moved], arrays.index_list[chosen] - 1) + 1
        self._indexed[chosen] = True
        if self._needs_new_lists(arrays, row_count):
            return self.rebuild(arrays, row_count)
        return int(chosen.size)

    def _needs_new_lists(self, arrays, row_count: int) -> bool:
        """The index is stale; when only because its vectors were replaced 4 times over, the lists are kept while
        they still fit a seeded sample of the live rows' keys (:func:`streamer.core.list_fit.still_fits`)."""
        if not self.index.stale:
            return False
        if not self.index.worn:
            return True
        rows = np.flatnonzero(arrays.status[:row_count] == ITEM_LIVE)
        return not still_fits(self.index, self._keys(arrays, rows[fit_sample(self.index, rows.size)]))

    def _keys(self, arrays, rows: np.ndarray) -> np.ndarray:
        return score_keys(arrays, rows, self.settings, self.clock())

    def _moved(self, current: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Rows whose key moved more than ``move_threshold`` in any part (relative; the log count absolute
        against max(1, its value))."""
        size, threshold = self.settings.vector_size, self.move_threshold
        direction = key_direction(size)
        count = 3 * size
        count_change = np.abs(current[:, count] - reference[:, count]) > threshold * np.maximum(1.0, np.abs(reference[:, count]))
        return (moved_rows(current[:, :2 * size], reference[:, :2 * size], threshold)
                | moved_rows(current[:, direction], reference[:, direction], threshold) | count_change)

    def follow(self, arrays, moved: np.ndarray, unmoved: np.ndarray) -> None:
        """The publisher decided: ``moved`` rows are re-indexed, ``unmoved`` rows keep their indexed key; both
        leave the ``DIRTY_INDEX`` set (nothing to do before the next change)."""
        if not self.built:
            return  # the first query indexes everything
        size = int(max(moved.max() if moved.size else 0, unmoved.max() if unmoved.size else 0)) + 1
        if self._indexed.size < size:
            self._indexed = np.concatenate([self._indexed, np.zeros(size - self._indexed.size, bool)])
        fresh = ~self._indexed[unmoved]
        moved = np.concatenate([moved, unmoved[fresh]])  # never indexed: in they go
        arrays.index_list[moved] = self.index.update(moved, self._keys(arrays, moved), arrays.index_list[moved] - 1) + 1
        self._indexed[moved] = True
        mask = np.uint8(~DIRTY_INDEX & 0xFF)
        arrays.dirty[moved] &= mask
        arrays.dirty[unmoved] &= mask
        if self._needs_new_lists(arrays, arrays.status.size):
            self.rebuild(arrays, arrays.status.size)

    def rebuild(self, arrays, row_count: int) -> int:
        """Index every live row from scratch. The first time (after a checkpoint load: the index adopted the
        checkpoint's lists, :mod:`streamer.core.index_state`) each row goes back to the list ``index_list`` holds,
        but for the rows that may have moved since (``DIRTY_INDEX``), which go to their nearest list."""
        rows = np.flatnonzero(arrays.status[:row_count] == ITEM_LIVE)
        lists_of = None if self.built else lambda positions: self._known_lists(arrays, rows[positions])
        lists = self.index.rebuild(rows, vectors_of=lambda positions: self._keys(arrays, rows[positions]),  # in blocks
                                   lists_of=lists_of)
        arrays.index_list[:row_count] = 0
        arrays.index_list[rows] = lists + 1
        arrays.dirty[:row_count] &= np.uint8(~DIRTY_INDEX & 0xFF)
        self._indexed = np.zeros(row_count, bool)
        self._indexed[rows] = True
        self.built = True
        return int(rows.size)

    @staticmethod
    def _known_lists(arrays, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The list each row was last put in (-1: none), and whether it may have moved since (``DIRTY_INDEX``)."""
        return arrays.index_list[rows].astype(np.int64) - 1, (arrays.dirty[rows] & DIRTY_INDEX) != 0

    def forget_rows(self, rows: np.ndarray) -> None:
        """Released rows leave the index (a reused row comes back when its new item is indexed)."""
        rows = rows[rows < self._indexed.size]
        rows = rows[self._indexed[rows]]
        if rows.size:
            self.index.remove(rows)
            self._indexed[rows] = False

    def forget(self) -> None:
        """The engine's rows were replaced (a checkpoint was loaded): rebuild before the next query."""
        self.built = False
        self._popular, self._popular_at = None, -1

    # ---- answering --------------------------------------------------------------------------------------

    def _index_source(self, arrays, queries: np.ndarray) -> np.ndarray:
        return self.index.search(score_queries(arrays, queries, self.settings), self.index_candidates)

    def _popular_source(self, arrays, queries: np.ndarray) -> np.ndarray:
        return self._popular

    def refresh_popular(self, arrays, row_count: int, settings, now: float, event_count: int) -> None:
        """The ``popular_candidates`` live rows with the highest prior, again after ``popular_refresh`` x items events."""
        if (self._popular is not None
                and event_count - self._popular_at < max(1.0, self.popular_refresh * self.index_size_hint)):
            return
        live = np.flatnonzero(arrays.status[:row_count] == ITEM_LIVE)
        counts = popularity_counts(arrays, live, settings.popularity_half_life, now)
        count = min(self.popular_candidates, live.size)
        self._popular = live[np.argpartition(-counts, count - 1)[:count]] if count else np.zeros(0, np.int64)
        self._popular_at = event_count
        self.index_size_hint = live.size

    def candidates(self, arrays, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every source's candidates: (per query (len(queries), m) rows, shared (n,) rows); -1 for none."""
        answers = [np.asarray(source(arrays, queries), np.int64) for source in self.sources]
        per_query = [answer for answer in answers if answer.ndim == 2]
        shared = [answer for answer in answers if answer.ndim == 1]
        per_query = np.hstack(per_query) if per_query else np.zeros((queries.size, 0), np.int64)
        return per_query, np.unique(np.concatenate(shared)) if shared else np.zeros(0, np.int64)

    def extra_terms(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """The sum of the extra terms for ``candidates`` ((q, m) or (n,)) as float32 (q, m or n); (0, 0) when none
        applies (the kernel's "no extra term")."""
        total = None
        for term in self.terms:
            extra = term(queries, candidates)
            if extra is not None:
                total = np.array(extra, np.float32) if total is None else total + extra
        return np.zeros((0, 0), np.float32) if total is None else np.ascontiguousarray(total, np.float32)

    def top(self, arrays, queries: np.ndarray, k: int, settings, now: float) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` candidates of each query by the full score: (rows, scores), both (q, k), best
        first; rows -1 (score -inf) where fewer than ``k`` candidates were left."""
        per_query, shared = self.candidates(arrays, queries)
        per_query = np.where(per_query < 0, queries[:, None], per_query)  # -1: the query itself, dropped
        return self.best(arrays, queries, per_query, shared, k, settings, now)

    def best(self, arrays, queries: np.ndarray, per_query: np.ndarray, shared: np.ndarray, k: int, settings,
             now: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`top` over given candidates (``per_query`` (q, m) rows, ``shared`` (n,) unique rows), scored and
        selected in one compiled pass (:func:`streamer.core.scoring.select_top`), the extra terms included;
        ``Trainer.most_similar(exact=True)`` passes every live row as ``shared``."""
        queries = np.ascontiguousarray(queries, np.int64)
        per_query = np.ascontiguousarray(per_query, np.int64)
        shared = np.ascontiguousarray(shared, np.int64)
        size = arrays.status.size
        if self._marks.size < size:
            self._marks = np.zeros(size, np.uint8)
        return select_top(arrays.vectors_in, arrays.vectors_out, arrays.counts, arrays.recent, arrays.last_seen,
                          arrays.status, score_weights(settings), prior_decay(settings.popularity_half_life, now),
                          float(now), queries, per_query, shared, self.extra_terms(queries, per_query),
                          self.extra_terms(queries, shared), int(k), self._marks, self.scales_of(queries))

    def scales_of(self, queries: np.ndarray) -> np.ndarray:
        """The queries' factors on their dot and cosine terms (:attr:`query_scales`), or (0,) for none."""
        scales = self.query_scales(queries) if self.query_scales is not None else None
        return np.zeros(0, np.float32) if scales is None else np.ascontiguousarray(scales, np.float32)
