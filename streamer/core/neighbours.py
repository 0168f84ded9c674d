"""The approximate nearest-neighbour index: one narrow face, faiss-cpu behind it.

:class:`NeighbourIndex` maps engine rows to their nearest vectors: by cosine, or by inner product over the
score keys ``most_similar`` stores. It is a *candidate source*: ``Trainer.most_similar`` re-scores what it returns
with the full score, so a vector that moved a little since it was indexed costs nothing in the final ranking.
Why faiss's inverted file and not usearch's or voyager's HNSW graphs (0.15-1.5 ms an insert here, against 15-30
µs, at the same recall): docs/neighbours.md, ``ops/compare_neighbour_indexes.py``.

Layout: below ``flat_limit`` items an exact inner-product scan (``IndexIDMap2(IndexFlatIP)``); above it an
inverted file of ``~2 sqrt(n)`` k-means lists with half-precision codes (``IndexIVFScalarQuantizer``, fp16)
and a hash-table id map, so that removing or replacing a row costs O(1), not a scan.

Two kinds of vectors. By default (``direction=None``) vectors are unit normalised on the way in (inner
product = cosine). With ``direction`` (a slice), the vectors are *score keys* searched by plain inner product
(:func:`streamer.core.similarity.score_keys`), and the lists are k-means lists of the unit ``direction`` part
alone (the centroids sit in that slice, zeros elsewhere): a row lands in the list of its nearest direction
(list_assign.py), a query probes the lists nearest its own, and the lists are ranked by the whole product.
:attr:`NeighbourIndex.stale` says when the catalog has grown (or moved) enough that new lists may pay
(list_fit.py, when it only moved). A checkpoint keeps the lists (index_state.py).

Pure: no I/O, no clock; k-means is seeded.

>>> import numpy as np
>>> index = NeighbourIndex(vector_size=4)
>>> lists = index.update(np.array([3, 5, 7]), np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 1, 0]], np.float32))
>>> index.search(np.array([[1, 0, 0, 0]], np.float32), 2).tolist()
[[3, 5]]
>>> index.remove(np.array([5])); len(index)
2
"""

from __future__ import annotations

import faiss
import numpy as np

from streamer.core.list_assign import nearest_from, neighbourhoods

__all__ = ["NeighbourIndex", "moved_rows", "unit_rows"]

TRAINING_SAMPLE = 40  # k-means points per list (faiss asks for at least 39)
KMEANS_ITERATIONS = 10
ASSIGN_BLOCK = 65_536  # keys assigned to their lists per matrix product


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), np.float32)


class NeighbourIndex:
    """Cosine neighbours of rows: ``update(rows, vectors)``, ``remove(rows)``, ``search(vectors, count)``.

    ``probes`` lists are scanned per query (more: better recall, slower); ``flat_limit``: below it the
    scan is exact; ``threads``: faiss's OpenMP threads (1: the daemon's loop owns one core); ``direction``:
    None for a cosine index, else the slice of the (inner-product) vectors the lists are trained on;
    ``list_factor``: the index has ``list_factor * sqrt(n)`` lists (2: half the vectors scanned per probe
    of the usual sqrt(n), for the same recall on a trained 200k-item model: 0.981 against 0.9805 at 8 probes).
    """

    def __init__(self, vector_size: int, probes: int = 8, flat_limit: int = 20_000, seed: int = 0,
                 threads: int = 1, direction: slice | None = None, list_factor: float = 2.0):
        self.vector_size, self.probes, self.flat_limit, self.seed = vector_size, probes, flat_limit, seed
        self.list_factor = list_factor
        self.direction = direction
        faiss.omp_set_num_threads(threads)
        self._index = self._flat()
        self.trained_size = 0  # items when the lists were trained (0: flat)
        self.updates_since_training = 0
        self.centroids: np.ndarray | None = None  # (lists, direction size) float32 while the lists are k-means'
        self.trainings = 0  # rebuilds that made new lists (or went flat): a checkpoint then carries every row's list
        self._adopted: tuple | None = None  # (centroids, trained size, updates) from a checkpoint, for the next rebuild
        self.fit_checks = 0  # list_fit.still_fits calls (seeds each one's sample)

    def _flat(self):
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.vector_size))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def lists(self) -> int:
        return int(getattr(self._index, "nlist", 0))

    @property
    def memory_bytes(self) -> int:
        """Bytes the index holds: its codes, ids, id map and centroids (computed from faiss's sizes)."""
        count, size = len(self), self.vector_size
        if not self.trained_size:
            return count * (4 * size + 8 + 8)  # flat codes, ids, the IDMap2 reverse map
        return count * (self._index.code_size + 8 + 16) + self.lists * 4 * size  # codes, ids, hash map, centroids

    @property
    def stale(self) -> bool:
        """A rebuild is due: the flat scan outgrew ``flat_limit``, or the catalog doubled (or shrank to a
        quarter) since the lists were trained, or the indexed vectors were replaced 4 times over."""
        return self._outgrown(len(self), self.trained_size, self.updates_since_training)

    @property
    def worn(self) -> bool:
        """Stale only because the vectors were replaced 4 times over: :func:`~streamer.core.list_fit.still_fits`
        decides then."""
        return self.stale and bool(self.trained_size) and not self._outgrown(len(self), self.trained_size, 0)

    def _outgrown(self, count: int, trained_size: int, updates: int) -> bool:
        if not trained_size:
            return count > self.flat_limit
        return count > 2 * trained_size or 4 * count < trained_size or updates > 4 * trained_size

    def update(self, rows: np.ndarray, vectors: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """Add ``rows`` with ``vectors`` ((n, vector_size)), replacing the ones already indexed; returns the
        list each went to (int64 (n,); -1 for a flat scan or a cosine index). ``previous``: the list each was in
        (-1: none), where the search for its nearest starts (list_assign.py: the same answer, cheaper)."""
        rows = np.ascontiguousarray(rows, np.int64)
        if rows.size == 0:
            return np.zeros(0, np.int64)
        self.remove(rows)
        lists = self._add(rows, self._stored_form(vectors), hints=previous)
        self.updates_since_training += rows.size
        return lists

    def remove(self, rows: np.ndarray) -> None:
        """Drop ``rows`` (those not indexed are ignored)."""
        rows = np.ascontiguousarray(rows, np.int64)
        if rows.size and len(self):
            self._index.remove_ids(faiss.IDSelectorArray(rows))

    def _stored_form(self, vectors: np.ndarray) -> np.ndarray:
        if self.direction is None:
            return unit_rows(vectors)
        return np.ascontiguousarray(vectors, np.float32)

    def stored(self, rows: np.ndarray) -> np.ndarray:
        """The vectors the index holds for ``rows`` (all indexed; unit vectors for a cosine index), float32
        (n, vector_size)."""
        rows = np.ascontiguousarray(rows, np.int64)
        if rows.size == 0:
            return np.zeros((0, self.vector_size), np.float32)
        return self._index.reconstruct_batch(rows)

    def adopt(self, centroids: np.ndarray | None, trained_size: int, updates_since_training: int) -> None:
        """Lists trained before (a checkpoint's: their direction centroids, ``centroids``, None for none): the
        next :meth:`rebuild` given ``lists_of`` uses them, with the rows' own lists, instead of k-means, unless
        the rows it indexes would already make it :attr:`stale`."""
        self._adopted = None if centroids is None else (np.ascontiguousarray(centroids, np.float32),
                                                        int(trained_size), int(updates_since_training))

    def training(self) -> tuple[np.ndarray | None, int, int]:
        """What a checkpoint keeps of the lists: (centroids or None, trained size, updates since training); the
        adopted ones until the rebuild that uses them."""
        if self._adopted is not None:
            return self._adopted
        return self.centroids, self.trained_size, self.updates_since_training

    def rebuild(self, rows: np.ndarray, vectors: np.ndarray | None = None, vectors_of=None,
                lists_of=None) -> np.ndarray:
        """Forget everything and index ``rows`` with ``vectors``: exact below ``flat_limit``, else new lists.
        Returns the list of each row (int64, as :meth:`update`).

        Or ``vectors_of(positions)`` -> the vectors of ``rows[positions]``, asked for in blocks (the k-means sample,
        then :data:`ASSIGN_BLOCK` rows), so all n never exist at once (832 MB of score keys at 1M items).
        ``lists_of(positions)`` -> (the lists those rows were in, -1: unknown; True where the row may have moved
        since): with :meth:`adopt`'s centroids the rows go back to them (the unknown to their nearest, the moved
        to their nearest found from there), without k-means or assigning every row."""
        rows = np.ascontiguousarray(rows, np.int64)
        if vectors_of is None:
            stored = self._stored_form(vectors) if rows.size else np.zeros((0, self.vector_size), np.float32)
            stored_of = lambda positions: stored[positions]  # noqa: E731
        else:
            stored_of = lambda positions: self._stored_form(vectors_of(positions))  # noqa: E731
        adopted, self._adopted = self._adopted, None
        if lists_of is None or adopted is None or self._outgrown(rows.size, *adopted[1:]):
            lists_of = None
            self._train(rows, stored_of)
        else:
            self._index = self._empty(adopted[0])
            self.trained_size, self.updates_since_training = adopted[1:]
        lists = np.full(rows.size, -1, np.int64)
        for start in range(0, rows.size, ASSIGN_BLOCK):
            positions = np.arange(start, min(rows.size, start + ASSIGN_BLOCK))
            known, moved = (None, None) if lists_of is None else lists_of(positions)
            hints = None if moved is None else np.where(moved, known, -1)
            known = None if moved is None else np.where(moved, -1, known)
            lists[positions] = self._add(rows[positions], stored_of(positions), known, hints)
        return lists

    def _train(self, rows: np.ndarray, stored_of) -> None:
        """New lists for ``rows`` (k-means on a seeded sample), or a flat scan below ``flat_limit``."""
        self.trainings += 1
        self.updates_since_training = 0
        if rows.size <= self.flat_limit:
            self._index, self.trained_size, self.centroids = self._flat(), 0, None
            return
        lists = max(16, int(self.list_factor * np.sqrt(rows.size)))
        sample = np.random.default_rng(self.seed).choice(rows.size, min(rows.size, TRAINING_SAMPLE * lists),
                                                         replace=False)
        self._index, self.trained_size = self._empty(self._kmeans(stored_of(sample), lists)), rows.size

    def _add(self, rows: np.ndarray, stored: np.ndarray, known: np.ndarray | None = None,
             hints: np.ndarray | None = None) -> np.ndarray:
        """Add stored-form vectors; for score keys the list of each is its nearest centroid by the direction
        part alone, computed here (faiss's own assignment would multiply the whole key by centroids that are
        zero outside the direction: 3x the work, the same answer), or ``known`` (-1: compute it), starting from
        ``hints`` (-1: none). Returns the lists (-1 each for a flat scan or a cosine index)."""
        if self.direction is None or not self.trained_size:
            self._index.add_with_ids(stored, rows)
            return np.full(rows.size, -1, np.int64)
        lists = np.full(rows.size, -1, np.int64) if known is None else np.asarray(known, np.int64).copy()
        hints = np.full(rows.size, -1, np.int64) if hints is None else np.asarray(hints, np.int64)
        lists[lists >= self.lists] = -1
        hinted = np.flatnonzero((lists < 0) & (hints >= 0) & (hints < self.lists))
        if hinted.size:
            lists[hinted] = nearest_from(stored[hinted][:, self.direction], hints[hinted], self.centroids,
                                         *self._neighbourhoods, exact=self._nearest_directions)
        missing = np.flatnonzero(lists < 0)
        if missing.size:
            lists[missing] = self._nearest(stored if missing.size == rows.size else stored[missing])
        for start in range(0, rows.size, ASSIGN_BLOCK):
            block = np.ascontiguousarray(stored[start:start + ASSIGN_BLOCK])
            self._index.add_core(block.shape[0], faiss.swig_ptr(block),
                                 faiss.swig_ptr(np.ascontiguousarray(rows[start:start + ASSIGN_BLOCK])),
                                 faiss.swig_ptr(np.ascontiguousarray(lists[start:start + ASSIGN_BLOCK])))
        return lists

    def _nearest(self, stored: np.ndarray) -> np.ndarray:
        """The list of each score key: its nearest centroid by the direction part."""
        return self._nearest_directions(stored[:, self.direction])

    def _nearest_directions(self, directions: np.ndarray) -> np.ndarray:
        lists = np.empty(directions.shape[0], np.int64)
        for start in range(0, directions.shape[0], ASSIGN_BLOCK):  # blocks: a (65,536 x lists) product at most
            lists[start:start + ASSIGN_BLOCK] = np.argmax(directions[start:start + ASSIGN_BLOCK]
                                                          @ self._direction_centroids, axis=1)
        return lists

    def _kmeans(self, sample: np.ndarray, lists: int) -> np.ndarray:
        """``lists`` seeded spherical k-means centroids of ``sample`` (stored-form vectors; their direction
        part for score keys): (lists, direction or vector size) float32."""
        if self.direction is not None:
            sample = unit_rows(sample[:, self.direction])
        kmeans = faiss.Kmeans(sample.shape[1], lists, niter=KMEANS_ITERATIONS, seed=self.seed + 1,
                              spherical=True, verbose=False)
        kmeans.train(sample)
        return np.ascontiguousarray(kmeans.centroids, np.float32)

    def _empty(self, centroids: np.ndarray):
        """An empty inverted file over ``centroids`` (:meth:`_kmeans`'s); they become :attr:`centroids`."""
        lists = centroids.shape[0]
        self.centroids = centroids
        full = centroids
        if self.direction is not None:  # the centroids live in the direction slice of the keys
            full = np.zeros((lists, self.vector_size), np.float32)
            full[:, self.direction] = centroids
            self._direction_centroids = np.ascontiguousarray(centroids.T)  # what _add and search multiply by
            self._direction_lists = faiss.IndexFlatIP(centroids.shape[1])
            self._direction_lists.add(centroids)
            self._neighbourhoods = neighbourhoods(centroids)  # where a moved row's nearest list is looked for first
        quantiser = faiss.IndexFlatIP(self.vector_size)
        quantiser.add(full)
        index = faiss.IndexIVFScalarQuantizer(quantiser, self.vector_size, lists, faiss.ScalarQuantizer.QT_fp16,
                                              faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True  # the coarse centroids are k-means'; fp16 codes need no training
        index.nprobe = min(self.probes, lists)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return index

    def search(self, vectors: np.ndarray, count: int) -> np.ndarray:
        """Rows of the ``count`` nearest indexed vectors (cosine; inner product with ``direction``) to each of
        ``vectors``: int64 (n, count), nearest first, -1 where fewer are indexed."""
        vectors = np.atleast_2d(vectors)
        if len(self) == 0 or count <= 0 or vectors.shape[0] == 0:
            return np.full((vectors.shape[0], max(count, 0)), -1, np.int64)
        vectors = self._stored_form(vectors)
        if self.direction is None or not self.trained_size:
            return self._index.search(vectors, count)[1]
        lists, closeness = self._probed_lists(vectors)
        return self._index.search_preassigned(vectors, count, lists, closeness)[1]

    def _probed_lists(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``probes`` lists nearest each score-key query and its inner product with their centroids, from the
        direction part alone (faiss's coarse search would multiply whole keys by centroids that are zero outside
        it: 3x the work for the same lists)."""
        closeness, lists = self._direction_lists.search(np.ascontiguousarray(vectors[:, self.direction]),
                                                        self._index.nprobe)
        return lists, closeness


def moved_rows(current: np.ndarray, reference: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask: rows whose ``current`` vector moved more than ``threshold`` relative to ``reference``
    (``|current - reference| > threshold * |reference|``; a zero reference always counts as moved)."""
    difference = np.linalg.norm(current - reference, axis=1)
    scale = np.linalg.norm(reference, axis=1)
    return (difference > threshold * scale) | (scale == 0.0)
