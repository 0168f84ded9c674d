"""Session co-occurrence counts: the protocol's session rule and the ``cooc`` baseline, pure (no I/O).

Shared by the evaluation (``streamer eval``'s ``cooc`` / ``cooc-attr`` baselines, shared/EVALUATION.md) and
by the daemon's live quality check (:mod:`streamer.core.live_quality`, its co-occurrence shadow), so that
both count the same way; it sits in the core because the daemon must not depend on the evaluation package.

>>> model = CooccurrenceModel()
>>> model.learn([("u", "a", 0), ("u", "b", 1), ("u", "c", 2), ("v", "a", 3), ("v", "c", 4)])
>>> model.rank(["a", "z"], k=2)
[['c', 'b'], None]
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

__all__ = ["SESSION_GAP_SECONDS", "CooccurrenceModel", "Event", "SessionTracker"]

SESSION_GAP_SECONDS = 30 * 60
Event = tuple[str, str, float]


class SessionTracker:
    """Per-key sessions in event time: ``push`` returns up to ``window`` previous items of the event's session.

    An empty tuple means the event opens a new session (first event of its key, or a gap > ``gap``).
    """

    def __init__(self, window: int = 1, gap: float = SESSION_GAP_SECONDS):
        self.window = window
        self.gap = gap
        self._open: dict[str, tuple[float, tuple[str, ...]]] = {}

    def push(self, key: str, item: str, ts: float) -> tuple[str, ...]:
        last = self._open.get(key)
        history = last[1] if last is not None and ts - last[0] <= self.gap else ()
        self._open[key] = (ts, (history + (item,))[-self.window:])
        return history



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
