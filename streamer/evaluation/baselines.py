"""Count baselines of the protocol: popularity, session co-occurrence and co-occurrence filled from the
catalog (``cooc-attr``, shared/EVALUATION.md §7); all learn as the stream goes.

``CooccurrenceModel`` lives in :mod:`streamer.core.cooccurrence` (the daemon's live shadow uses it too).
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

from streamer.core.cooccurrence import SESSION_GAP_SECONDS, CooccurrenceModel, Event

__all__ = ["CooccurrenceAttributeModel", "CooccurrenceModel", "PopularityModel"]


class PopularityModel:
    """The ``k`` most frequent items seen so far, the query item excluded; it answers every query.

    Ties are broken by first appearance (earlier first).
    """

    name = "popular"

    def __init__(self):
        self.counts: Counter[str] = Counter()

    def learn(self, events: list[Event]) -> None:
        self.counts.update(item for _, item, _ in events)

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]:
        leaders = [item for item, _ in heapq.nlargest(k + 1, self.counts.items(), key=lambda pair: pair[1])]
        return [[item for item in leaders if item != query][:k] for query in query_items]


class CooccurrenceAttributeModel(CooccurrenceModel):
    """``cooc-attr``: the co-occurrence top ``k``, its empty slots filled with the most frequent items so far that
    share an attribute with the query item (the query excluded; the items of all its attributes pooled, ranked by
    count, ties by first appearance). Attributes come from ``catalog`` upserts; without them it is ``cooc``.

    A query item known to the catalog but never seen in an event is still a miss (no co-occurrence entry), as
    for ``cooc``: the protocol queries only items that had an event.
    """

    name = "cooc-attr"
    catalog_name = "cooc-attr"

    def __init__(self, window: int = 3, gap: float = SESSION_GAP_SECONDS):
        super().__init__(window, gap)
        self.attributes: dict[str, list[tuple[str, str]]] = {}
        self.members: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        self.frequency: Counter[str] = Counter()
        self.first: dict[str, int] = {}  # item -> first-appearance position (the tie-break)
        self._leaders: dict[tuple[tuple[str, str], int], list[str]] = {}

    def catalog(self, updates: list[dict]) -> None:
        for update in updates:
            item, pairs = update["item"], list(update.get("attrs", {}).items())
            for pair in self.attributes.get(item, []):
                self.members[pair].remove(item)
            self.attributes[item] = pairs
            for pair in pairs:
                self.members[pair].append(item)
        self._leaders.clear()

    def learn(self, events: list[Event]) -> None:
        super().learn(events)
        for _, item, _ in events:
            self.frequency[item] += 1
            self.first.setdefault(item, len(self.first))
        self._leaders.clear()

    def _key(self, item: str) -> tuple[int, int]:
        return self.frequency[item], -self.first[item]

    def _top_of(self, pair: tuple[str, str], depth: int) -> list[str]:
        """The ``depth`` most frequent items of one attribute (cached until the next learn or catalog call)."""
        leaders = self._leaders.get((pair, depth))
        if leaders is None:
            seen = [item for item in self.members[pair] if item in self.first]
            leaders = self._leaders[pair, depth] = heapq.nlargest(depth, seen, key=self._key)
        return leaders

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]:
        rankings = super().rank(query_items, k)
        for position, (query, ranking) in enumerate(zip(query_items, rankings)):
            if ranking is None or len(ranking) >= k or not self.attributes.get(query):
                continue
            depth = 2 * k + 1  # enough: at most k + 1 of an attribute's leaders are excluded
            pooled = {item for pair in self.attributes[query] for item in self._top_of(pair, depth)}
            taken = set(ranking) | {query}
            fill = sorted(pooled - taken, key=self._key, reverse=True)
            rankings[position] = ranking + fill[: k - len(ranking)]
        return rankings
