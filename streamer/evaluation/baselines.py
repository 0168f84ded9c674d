"""Count baselines of the protocol: popularity and session co-occurrence (both learn as the stream goes).

>>> model = CooccurrenceModel()
>>> model.learn([("u", "a", 0), ("u", "b", 1), ("u", "c", 2), ("v", "a", 3), ("v", "c", 4)])
>>> model.rank(["a", "z"], k=2)
[['c', 'b'], None]
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

from streamer.evaluation.protocol import SESSION_GAP_SECONDS, Event, SessionTracker

__all__ = ["CooccurrenceModel", "PopularityModel"]


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
