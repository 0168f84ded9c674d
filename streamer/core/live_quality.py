"""Live quality: the daemon scores itself on a sample of live events before it learns them.

For every event whose session (the protocol's rule: per user, new after a gap > 30 minutes) has a previous
item different from it, a seeded sampler decides whether it is a *query* ``previous item -> item``. A sampled
query is scored against two rankings, both taken before the event's batch is learned:

- ``streamer``: the top-10 of the previous item's neighbour list **as last published** (the record the sink
  hands to :meth:`LiveQuality.published`, i.e. exactly what a service reading ``{ns}:nn:{item}`` sees);
- ``cooc``: a co-occurrence shadow with bounded memory (:class:`CooccurrenceShadow`), the protocol's
  co-occurrence baseline (pairs within 3 positions of a session, both directions).

Hits go into a sliding window per model (:class:`HitWindow`); totals are kept as well. Pure: no I/O, no clock.

>>> quality = LiveQuality(sample_rate=1.0, window=100)
>>> quality.published({"a": ["b", "c"]})
>>> quality.observe([("u", "a", 0.0), ("u", "b", 1.0), ("v", "a", 2.0), ("v", "b", 3.0)])  # 2 queries a -> b
2
>>> quality.windows["streamer"].rate, quality.windows["cooc"].rate  # the shadow learns a batch after scoring it
(1.0, 0.0)
>>> quality.observe([("w", "a", 4.0), ("w", "b", 5.0)]), quality.windows["cooc"].rate
(1, 0.3333333333333333)
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from operator import itemgetter

from streamer.core.cooccurrence import SESSION_GAP_SECONDS, CooccurrenceModel, SessionTracker

__all__ = ["K", "MODELS", "BoundedSessions", "CooccurrenceShadow", "HitWindow", "LiveQuality"]

K = 10  # the protocol's cut-off: a hit is the target in the top 10
MODELS = ("streamer", "cooc")


class HitWindow:
    """The last ``size`` outcomes (hit or miss) with their running sum, and totals since the start."""

    def __init__(self, size: int):
        self._outcomes: deque[bool] = deque(maxlen=size)
        self.hits = 0  # in the window
        self.total_hits = 0
        self.total = 0

    def add(self, hit: bool) -> None:
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen:
            self.hits -= outcomes[0]
        outcomes.append(hit)
        self.hits += hit
        self.total_hits += hit
        self.total += 1

    def __len__(self) -> int:
        return len(self._outcomes)

    @property
    def rate(self) -> float | None:
        """Hits / outcomes in the window (None before the first outcome)."""
        return self.hits / len(self._outcomes) if self._outcomes else None


class BoundedSessions(SessionTracker):
    """The protocol's :class:`SessionTracker` with at most ``max_keys`` keys (the least recently seen goes)."""

    def __init__(self, max_keys: int, window: int = 3, gap: float = SESSION_GAP_SECONDS):
        super().__init__(window=window, gap=gap)
        self.max_keys = max_keys
        self._open: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()

    def push(self, key: str, item: str, ts: float) -> tuple[str, ...]:
        open_sessions = self._open
        if key in open_sessions:
            open_sessions.move_to_end(key)
        history = super().push(key, item, ts)
        if len(open_sessions) > self.max_keys:
            open_sessions.popitem(last=False)
        return history

    def __len__(self) -> int:
        return len(self._open)


class CooccurrenceShadow(CooccurrenceModel):
    """The protocol's co-occurrence baseline in bounded memory; ``rank`` is :class:`CooccurrenceModel`'s.

    At most ``max_items`` items keep counts (the least recently clicked one is dropped), each with at most
    ``2 * max_pairs`` partners: past that, only its ``max_pairs`` most frequent partners are kept (ties: the
    earlier co-occurrence, as in ``rank``). With bounds no log reaches, it ranks exactly like the baseline.
    """

    name = "cooc"

    def __init__(self, max_items: int, max_pairs: int, window: int = 3, gap: float = SESSION_GAP_SECONDS,
                 max_sessions: int = 100_000):
        super().__init__(window=window, gap=gap)
        self.sessions = BoundedSessions(max_sessions, window=window, gap=gap)
        self.counts: OrderedDict[str, dict[str, int]] = OrderedDict()  # type: ignore[assignment]
        self.max_items, self.max_pairs = max_items, max_pairs

    def learn(self, events: Iterable[Sequence]) -> None:
        for key, item, ts in events:
            self.count(item, self.sessions.push(key, item, ts))

    def count(self, item: str, history: tuple[str, ...]) -> None:
        """Count ``item`` with each earlier item of its session window, both directions (self-pairs skipped)."""
        counts, limit = self.counts, 2 * self.max_pairs
        partners = counts.get(item)
        if partners is None:
            partners = self._new(item)
        else:
            counts.move_to_end(item)
        for previous in history:
            if previous == item:
                continue
            partners[previous] = partners.get(previous, 0) + 1
            others = counts.get(previous)  # recency follows the clicked item alone (half the moves)
            if others is None:
                others = self._new(previous)
            others[item] = others.get(item, 0) + 1
            if len(others) > limit:
                self._prune(previous, others)
        if len(partners) > limit:
            self._prune(item, partners)

    def _new(self, item: str) -> dict[str, int]:
        counts = self.counts
        partners = counts[item] = {}
        if len(counts) > self.max_items:
            counts.popitem(last=False)
        return partners

    def _prune(self, item: str, partners: dict[str, int]) -> None:
        """Keep the ``max_pairs`` most frequent partners (ties: the earlier), in their order."""
        ranked = sorted(partners.items(), key=itemgetter(1), reverse=True)  # stable: ties keep the earlier
        kept = {other for other, _ in ranked[:self.max_pairs]}
        if item in self.counts:
            self.counts[item] = {other: count for other, count in partners.items() if other in kept}

    @property
    def pair_count(self) -> int:
        return sum(map(len, self.counts.values()))


class LiveQuality:
    """Sampled live hit rates of the published lists and of the co-occurrence shadow.

    ``observe(events)`` before the engine learns a batch; ``published(lists)`` after neighbour lists were
    written; ``forget(items)`` after their lists were deleted. ``inherited``: the items a restarted daemon
    already knew, whose lists in Redis it did not write itself; their queries are skipped until it does. ``shadow_items=0``: no shadow (only
    ``streamer`` is scored). Memory: ``max_sessions`` sessions of 3 items, the shadow's bounds, and one
    tuple of at most 10 ids per published list (the lists Redis holds).
    """

    def __init__(self, sample_rate: float, window: int, shadow_items: int = 20_000, shadow_pairs: int = 50,
                 max_sessions: int = 100_000, seed: int = 1, inherited: Iterable[str] = ()):
        self.sample_rate = sample_rate
        self.inherited = set(inherited)  # items whose list in Redis predates this record: unknown until rewritten
        self.inherited_at_start = len(self.inherited)
        self.skipped = 0  # sampled queries not scored: their previous item is inherited
        self._random = random.Random(seed).random
        self.shadow = CooccurrenceShadow(shadow_items, shadow_pairs, max_sessions=max_sessions) if shadow_items else None
        self.sessions = self.shadow.sessions if self.shadow else BoundedSessions(max_sessions)
        self.lists: dict[str, tuple[str, ...]] = {}
        self.windows = {name: HitWindow(window) for name in (MODELS if self.shadow else MODELS[:1])}

    def published(self, lists: dict[str, Sequence[str]] | Iterable[tuple[str, Sequence[str]]]) -> None:
        """Record item -> its neighbour ids (best first) as just written; only the top 10 are kept."""
        pairs = lists.items() if isinstance(lists, dict) else lists
        inherited = self.inherited
        for item, neighbours in pairs:
            self.lists[item] = tuple(neighbours[:K])
            inherited.discard(item)

    def forget(self, items: Iterable[str]) -> None:
        for item in items:
            self.lists.pop(item, None)
            self.inherited.discard(item)

    def observe(self, events: Iterable[Sequence]) -> int:
        """Score the sampled queries of a batch of ``(user, item, ts)`` in time order, then let the shadow
        learn the batch. Returns how many queries were scored. A query whose previous item is ``inherited``
        (its list was written before this record began, e.g. by the process before a restart) is skipped."""
        queries, histories = self._queries(events)
        if queries and self.inherited:
            sampled = len(queries)
            queries = [query for query in queries if query[0] not in self.inherited]
            self.skipped += sampled - len(queries)
        if queries:
            self._score(queries)
        if self.shadow is not None:
            count = self.shadow.count
            for item, history in histories:
                count(item, history)
        return len(queries)

    def _queries(self, events: Iterable[Sequence]) -> tuple[list[tuple[str, str]], list[tuple[str, tuple]]]:
        push, rate, draw = self.sessions.push, self.sample_rate, self._random
        queries: list[tuple[str, str]] = []
        histories: list[tuple[str, tuple]] = []
        for key, item, ts in events:
            history = push(key, item, ts)
            if not history:
                continue
            histories.append((item, history))
            if history[-1] != item and (rate >= 1.0 or draw() < rate):
                queries.append((history[-1], item))
        return queries, histories

    def _score(self, queries: list[tuple[str, str]]) -> None:
        lists, streamer = self.lists, self.windows["streamer"]
        for source, target in queries:
            streamer.add(target in lists.get(source, ()))
        if self.shadow is not None:
            sources = list(dict.fromkeys(source for source, _ in queries))
            rankings = dict(zip(sources, self.shadow.rank(sources, K)))
            cooc = self.windows["cooc"]
            for source, target in queries:
                cooc.add(target in (rankings[source] or ()))

    def status_fields(self) -> dict[str, object]:
        """``live_hit_<model>`` (window rate, '-' before any sample) and ``live_samples`` for the status line."""
        fields: dict[str, object] = {}
        for name, window in self.windows.items():
            fields[f"live_hit_{name}"] = "-" if window.rate is None else round(window.rate, 4)
        fields["live_samples"] = self.windows["streamer"].total
        return fields
