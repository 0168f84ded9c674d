"""The chunked prequential next-item protocol of ``shared/EVALUATION.md`` — one protocol for every model.

1. Events ``(key, item, ts)`` are sorted by ts (stable).
2. Sessions: per key, a new session starts when the gap to the key's previous event exceeds
   30 minutes; every event remembers the previous item of its own session.
3. ``cut = t0 + 0.8 (t1 - t0)``; events before ``cut`` are the warm-up, ``[cut, t1]`` is cut into
   ``S`` equal time slices.
4. The model learns the warm-up; then, slice by slice: every event whose previous session item exists
   and differs from it is a query ``previous item -> item``; the model ranks every item it knows (the
   query item excluded); hit@K and reciprocal rank are scored (K = 10); *then* the model learns the
   slice's events in time order.
5. Reported: HR@K, MRR@K, HR@K on "new" pairs (target never seen in the warm-up), coverage (share of
   queries whose item has a vector), pair counts and wall time of learning.

Catalog protocol (§7): with ``upserts`` (:func:`catalog_upserts`), a model that has a ``catalog(updates)``
method receives, before each chunk (warm-up, then every slice, after the slice's queries) is learned, one
upsert ``{"op": "upsert", "item", "attrs"}`` per item whose first event lies in that chunk; its result is named
``<name>+catalog``. A model without that method ignores them.

The model interface (duck-typed, see :class:`Model`) is three members::

    name: str
    learn(events: list[tuple[str, str, float]]) -> None   # time order; called once per chunk
    rank(query_items: list[str], k: int) -> list[list[str] | None]
        # for each query item its top-k items, best first, the query item itself excluded;
        # None when the model has no vector for the query item (the pair counts as a miss)

:func:`rank_by_cosine` is the one batched cosine ranking every vector model uses.

>>> events = [("u", "a", 0), ("u", "b", 60), ("u", "a", 120), ("u", "b", 900)]
>>> split = split_events(events, slices=1)
>>> [(query.source, query.target) for query in split.queries[0]]
[('a', 'b')]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from streamer.core.cooccurrence import SESSION_GAP_SECONDS, Event, SessionTracker
from streamer.errors import ConfigError

__all__ = [
    "SESSION_GAP_SECONDS",
    "Event",
    "WARMUP_SHARE",
    "Model",
    "ModelResult",
    "Query",
    "SessionTracker",
    "SliceResult",
    "Split",
    "catalog_name",
    "catalog_upserts",
    "evaluate",
    "rank_by_cosine",
    "split_events",
]

WARMUP_SHARE = 0.8


class Model(Protocol):
    """What :func:`evaluate` needs from a model."""

    name: str

    def learn(self, events: list[Event]) -> None: ...

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]: ...


@dataclass(frozen=True)
class Query:
    source: str
    target: str
    new: bool  # target never seen in the warm-up


@dataclass
class Split:
    """The time split of a log: warm-up events, ``S`` slices of events and each slice's queries."""

    warmup: list[Event]
    slices: list[list[Event]]
    queries: list[list[Query]]
    t0: float
    t1: float
    cut: float


def split_events(events: Iterable[Event], slices: int = 10, gap: float = SESSION_GAP_SECONDS) -> Split:
    """Sort (stable) by ts, sessionize, split at ``cut`` and into ``slices`` equal time slices."""
    if slices < 1:
        raise ConfigError("slices must be >= 1")
    ordered = sorted(((str(key), str(item), float(ts)) for key, item, ts in events), key=lambda event: event[2])
    if not ordered:
        return Split([], [[] for _ in range(slices)], [[] for _ in range(slices)], 0.0, 0.0, 0.0)
    t0, t1 = ordered[0][2], ordered[-1][2]
    cut = t0 + WARMUP_SHARE * (t1 - t0)
    width = (t1 - cut) / slices
    tracker = SessionTracker(window=1, gap=gap)
    warmup: list[Event] = []
    chunks: list[list[Event]] = [[] for _ in range(slices)]
    pending: list[list[tuple[str, str]]] = [[] for _ in range(slices)]
    for event in ordered:
        key, item, ts = event
        previous = tracker.push(key, item, ts)
        if ts < cut:
            warmup.append(event)
            continue
        index = min(slices - 1, int((ts - cut) / width)) if width > 0 else 0
        chunks[index].append(event)
        if previous and previous[-1] != item:
            pending[index].append((previous[-1], item))
    seen = {item for _, item, _ in warmup}
    queries = [[Query(source, target, target not in seen) for source, target in chunk] for chunk in pending]
    return Split(warmup, chunks, queries, t0, t1, cut)


def rank_by_cosine(
    ids: Sequence[str], vectors: np.ndarray, query_items: Sequence[str], k: int, batch_cells: int = 4_000_000
) -> list[list[str] | None]:
    """Top-``k`` items by cosine similarity to each query item's vector, the query item excluded.

    Batched: one matrix product per block of queries, ``argpartition`` for the top k, then a sort of k.
    """
    row_of = {item: row for row, item in enumerate(ids)}
    results: list[list[str] | None] = [None] * len(query_items)
    known = [(position, row_of[item]) for position, item in enumerate(query_items) if item in row_of]
    count = len(ids)
    if not known or count < 2 or k < 1:
        for position, _ in known:
            results[position] = []
        return results
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms > 0, norms, 1.0)
    depth = min(k, count - 1)
    batch = max(1, batch_cells // count)
    for start in range(0, len(known), batch):
        block = known[start:start + batch]
        rows = np.fromiter((row for _, row in block), dtype=np.int64, count=len(block))
        scores = unit[rows] @ unit.T
        scores[np.arange(len(rows)), rows] = -np.inf
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
        for (position, _), best in zip(block, order):
            results[position] = [ids[column] for column in best]
    return results


def catalog_upserts(split: Split, catalog: dict[str, dict[str, str]]) -> list[list[dict]]:
    """Per chunk (the warm-up, then each slice) the upserts of the catalogued items first seen in it, in
    first-event order. Items missing from the catalog get no upsert."""
    seen: set[str] = set()
    chunks = []
    for events in [split.warmup, *split.slices]:
        upserts = []
        for _, item, _ in events:
            if item not in seen:
                seen.add(item)
                if item in catalog:
                    upserts.append({"op": "upsert", "item": item, "attrs": dict(catalog[item])})
        chunks.append(upserts)
    return chunks


@dataclass
class SliceResult:
    pairs: int = 0
    hits: int = 0
    reciprocal_rank: float = 0.0
    covered: int = 0
    new_pairs: int = 0
    new_hits: int = 0
    learn_seconds: float = 0.0
    rank_seconds: float = 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.pairs if self.pairs else 0.0

    @property
    def new_hit_rate(self) -> float:
        return self.new_hits / self.new_pairs if self.new_pairs else 0.0


@dataclass
class ModelResult:
    """Totals over all slices plus the per-slice results (for the plot)."""

    name: str
    k: int
    warmup_learn_seconds: float = 0.0
    slices: list[SliceResult] = field(default_factory=list)

    def _total(self, attribute: str):
        return sum(getattr(chunk, attribute) for chunk in self.slices)

    pairs = property(lambda self: self._total("pairs"))
    hits = property(lambda self: self._total("hits"))
    covered = property(lambda self: self._total("covered"))
    new_pairs = property(lambda self: self._total("new_pairs"))
    new_hits = property(lambda self: self._total("new_hits"))
    rank_seconds = property(lambda self: self._total("rank_seconds"))

    @property
    def learn_seconds(self) -> float:
        return self.warmup_learn_seconds + self._total("learn_seconds")

    @property
    def hit_rate(self) -> float:
        return self.hits / self.pairs if self.pairs else 0.0

    @property
    def mean_reciprocal_rank(self) -> float:
        return self._total("reciprocal_rank") / self.pairs if self.pairs else 0.0

    @property
    def new_hit_rate(self) -> float:
        return self.new_hits / self.new_pairs if self.new_pairs else 0.0

    @property
    def coverage(self) -> float:
        return self.covered / self.pairs if self.pairs else 0.0


def score_slice(model: Model, queries: list[Query], k: int) -> SliceResult:
    """Rank each distinct query item once (the model does not change within a slice) and score the pairs."""
    result = SliceResult(pairs=len(queries))
    distinct = list(dict.fromkeys(query.source for query in queries))
    started = time.perf_counter()
    rankings = dict(zip(distinct, model.rank(distinct, k) if distinct else []))
    result.rank_seconds = time.perf_counter() - started
    positions: dict[str, dict[str, int]] = {}
    for query in queries:
        ranking = rankings.get(query.source)
        result.new_pairs += query.new
        if ranking is None:
            continue
        result.covered += 1
        if query.source not in positions:
            positions[query.source] = {item: rank for rank, item in reversed(list(enumerate(ranking[:k])))}
        rank = positions[query.source].get(query.target)
        if rank is not None:
            result.hits += 1
            result.new_hits += query.new
            result.reciprocal_rank += 1.0 / (rank + 1)
    return result


ProgressCallback = Callable[[str, int, int, SliceResult], None]


def catalog_name(model) -> str:
    """The result name of a model run with the catalog: its ``catalog_name``, else ``<name>+catalog``."""
    return getattr(model, "catalog_name", model.name + "+catalog")


def evaluate(model: Model, split: Split, k: int = 10, progress: ProgressCallback | None = None,
             upserts: list[list[dict]] | None = None) -> ModelResult:
    """Learn the warm-up, then for each slice: score its queries, then learn its events. With ``upserts``
    (:func:`catalog_upserts`) a model with a ``catalog`` method receives each chunk's upserts before the chunk."""
    use_catalog = upserts is not None and hasattr(model, "catalog")
    result = ModelResult(name=catalog_name(model) if use_catalog else model.name, k=k)
    started = time.perf_counter()
    if use_catalog and upserts[0]:
        model.catalog(upserts[0])
    if split.warmup:
        model.learn(split.warmup)
    result.warmup_learn_seconds = time.perf_counter() - started
    for index, (events, queries) in enumerate(zip(split.slices, split.queries)):
        chunk = score_slice(model, queries, k)
        started = time.perf_counter()
        if use_catalog and upserts[index + 1]:
            model.catalog(upserts[index + 1])
        if events:
            model.learn(events)
        chunk.learn_seconds = time.perf_counter() - started
        result.slices.append(chunk)
        if progress is not None:
            progress(result.name, index, len(split.slices), chunk)
    return result
