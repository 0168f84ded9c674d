"""The catalog in ``most_similar``: an attribute-aware candidate source and an attribute term in the score.

A query's attributes (catalog upserts) bring in the *leaders* of each attribute (its most frequent items, kept
incrementally by :class:`streamer.core.vocab.ItemTable`) as candidates, and those candidates get

    attribute_weight * max(0, logit(shared) - logit(chance(q))) * (attributes of the query they have / attributes of q)

added to the full score. Both rates are measured on the stream itself, not tuned per data set, from the recent
session pairs of the replay buffer whose two items have attributes: ``shared`` is the share of pairs whose items
share an attribute; ``chance(q)`` the share of the pairs' items having one of the query's attributes (the rate
an item drawn by recent popularity would share one: the sum over the query's attributes, at most 1). The term
is the log odds ratio of "the next item shares the query's attributes" against "an item drawn by popularity
does": adding log(shared / chance) to the items that share and log((1 - shared) / (1 - chance)) to those that do
not is, up to a constant per query, this one term on the sharing items. It is in the units of the score's dot
term (SGNS's shifted PMI, a log probability ratio) and, with the popularity prior, ranks the sharing items as
p(shares | query) * p(item | shared attribute) would. Where the attributes say little about
what comes next (MovieLens genres) it is near 0; where the next item is usually of the same, rare, category
(e-commerce) it is large. The rates are re-measured every ``LIFT_REFRESH`` events (~20 ms for 10,000 pairs).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["AttributeAffinity", "LIFT_REFRESH", "MIN_PAIRS"]

LIFT_REFRESH = 2_000  # events between two measures of the lift
MIN_PAIRS = 100  # attributed pairs needed before the lift is trusted (below: no attribute term)


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


class AttributeAffinity:
    """Candidate source and score term of one engine; reads its item table and replay buffer through
    ``tables()`` -> (ItemTable, replay pairs) (a checkpoint load replaces them) and keeps no state of its own but
    the cached lift (derived from the buffer, so nothing to checkpoint)."""

    def __init__(self, tables, weight: float, seed: int = 0):
        self.tables, self.weight, self.seed = tables, float(weight), seed
        self._rates, self._measured_at = None, None

    @property
    def items(self):
        return self.tables()[0]

    # ---- the rates -------------------------------------------------------------------------------------

    def refresh(self, event_count: int):
        """The measured rates (see :meth:`measure`), re-measured every ``LIFT_REFRESH`` events."""
        if self._measured_at is None or event_count - self._measured_at >= LIFT_REFRESH or event_count < self._measured_at:
            self._rates = self.measure()
            self._measured_at = event_count
        return self._rates

    def measure(self):
        """(shared rate, {attribute: share of the pairs' items having it}, items counted), or None without
        ``MIN_PAIRS`` attributed pairs in the replay buffer. Rates smoothed by half a pair."""
        items, pairs = self.tables()
        if not items.attributes or self.weight == 0.0:
            return None
        pairs = pairs[(pairs[:, 0] >= 0) & (pairs[:, 1] >= 0)]
        ids, attributes_of = items.ids, items.attributes
        sets = {}
        for row in np.unique(pairs).tolist():
            item = ids[row] if row < len(ids) else None
            found = attributes_of.get(item) if item is not None else None
            if found:
                sets[row] = set(found.items())
        pairs = [(first, second) for first, second in pairs.tolist() if first in sets and second in sets]
        if len(pairs) < MIN_PAIRS:
            return None
        shared = sum(not sets[first].isdisjoint(sets[second]) for first, second in pairs)
        having: dict = {}
        for pair in pairs:
            for row in pair:
                for attribute in sets[row]:
                    having[attribute] = having.get(attribute, 0) + 1
        seen = 2 * len(pairs)
        return (shared + 0.5) / (len(pairs) + 1.0), {name: count / seen for name, count in having.items()}, seen

    def log_lift(self, row: int, rates) -> float:
        """max(0, logit(shared) - logit(chance(q))) for the query ``row`` (0 without rates or attributes)."""
        if rates is None:
            return 0.0
        shared, having, seen = rates
        attributes = self.items.attributes.get(self.items.ids[row]) if row < len(self.items.ids) else None
        if not attributes:
            return 0.0
        chance = min(1.0 - 0.5 / seen, sum(having.get(pair, 0.5 / seen) for pair in attributes.items()))
        return max(0.0, _logit(shared) - _logit(chance))

    def vector_scales(self, queries: np.ndarray, counts: np.ndarray, rates, events: float) -> np.ndarray | None:
        """Each query's factor on its dot and cosine terms: n / (n + ``events``) for a query with n events whose
        attributes the term credits (log lift > 0), else 1; None when no query is scaled. A rare item's vectors
        are still mostly its start and a few updates, while the counts of the attribute's leaders and of its
        observed partners are already exact: they, not the young vectors, should order its candidates."""
        if rates is None or self.weight == 0.0 or events <= 0.0:
            return None
        lifts = np.array([self.log_lift(row, rates) for row in queries.tolist()])
        if not (lifts > 0.0).any():
            return None
        seen = counts[queries].astype(np.float64)
        return np.where(lifts > 0.0, seen / (seen + events), 1.0).astype(np.float32)

    # ---- candidates and score term ---------------------------------------------------------------------

    def _leaders_of(self, row: int) -> dict[int, float]:
        """Leader rows of the query's attributes -> share of the query's attributes they have."""
        items = self.items
        item = items.ids[row] if row < len(items.ids) else None
        attributes = items.attributes.get(item) if item is not None else None
        if not attributes:
            return {}
        shared: dict[int, int] = {}
        for pair in attributes.items():
            for other in items.leaders_of(pair):
                if other != row:
                    shared[other] = shared.get(other, 0) + 1
        return {other: matches / len(attributes) for other, matches in shared.items()}

    def source(self, arrays, queries: np.ndarray) -> np.ndarray:
        """The leaders of each query's attributes: (len(queries), m) rows, -1 padded."""
        found = [list(self._leaders_of(row)) for row in queries.tolist()]
        width = max((len(rows) for rows in found), default=0)
        out = np.full((queries.size, width), -1, np.int64)
        for position, rows in enumerate(found):
            out[position, :len(rows)] = rows
        return out

    def term(self, queries: np.ndarray, candidates: np.ndarray, rates) -> np.ndarray | None:
        """The attribute term for (queries, candidates), candidates (q, n) per query or (n,) shared; None when 0."""
        if rates is None or self.weight == 0.0:
            return None
        shape = (queries.size, candidates.shape[-1])
        out = np.zeros(shape, np.float32)
        for position, row in enumerate(queries.tolist()):
            scale = self.weight * self.log_lift(row, rates)
            shares = self._leaders_of(row) if scale > 0.0 else None
            if not shares:
                continue
            rows = candidates[position] if candidates.ndim == 2 else candidates
            leader_rows = np.fromiter(shares, np.int64, len(shares))
            values = np.fromiter(shares.values(), np.float32, len(shares))
            order = np.argsort(leader_rows)
            leader_rows, values = leader_rows[order], values[order]
            where = np.clip(np.searchsorted(leader_rows, rows), 0, leader_rows.size - 1)
            hit = leader_rows[where] == rows
            out[position, hit] = np.float32(scale) * values[where[hit]]
        return out
