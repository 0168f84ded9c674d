"""Count baselines of the protocol: popularity, session co-occurrence and co-occurrence filled from the
catalog (``cooc-attr``, shared/EVALUATION.md §7); all learn as the stream goes.

>>> model = CooccurrenceModel()
>>> model.learn([("u", "a", 0), ("u", "b", 1), ("u", "c", 2), ("v", "a", 3), ("v", "c", 4)])
>>> model.rank(["a", "z"], k=2)
[['c', 'b'], None]
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

from streamer.evaluation.protocol import SESSION_GAP_SECONDS, Event, SessionTracker

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


class CooccurrenceModel:
    """Counts of item pairs within ``window`` positions of the same session, both directions; top ``k`` by count.

    Sessions follow the protocol's rule (per key, new after a gap > 30 minutes) and continue across
    ``learn`` calls. A pair of an item with itself is not counted. A query item never seen has no
    entry (``None``, a miss); ties are broken by first co-occurrence.
    """

    name = "cooc"

    def __init__(self, window: int = 3, gap: float = SESSION_GAP_SECONDS):
        self.sessions = SessionTracker(window=window, gap=gap)
        self.counts: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def learn(self, events: list[Event]) -> None:
        for key, item, ts in events:
            neighbours = self.counts[item]
            for previous in self.sessions.push(key, item, ts):
                if previous != item:
                    neighbours[previous] += 1
                    self.counts[previous][item] += 1

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]:
        rankings: list[list[str] | None] = []
        for query in query_items:
            neighbours = self.counts.get(query)
            if neighbours is None:
                rankings.append(None)
            else:
                best = heapq.nlargest(k, neighbours.items(), key=lambda pair: pair[1])
                rankings.append([item for item, _ in best])
        return rankings


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
