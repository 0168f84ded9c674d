"""Which neighbour lists ``{ns}:nn:{id}`` are due, in what order they are rewritten, and how old they were.

A list is due when its item's served vector was published (it moved), when it holds an item that was
released, or when it was never written. :class:`DueLists` keeps, per due item, when it became due, how
many changes it collected meanwhile and whether it is urgent (a catalog upsert: its list goes out with its
vector). :meth:`DueLists.choose` orders them: urgent first, then the ones waiting longer than ``max_wait``
(oldest first: nothing starves), then the most changed. :func:`refresh` rewrites as many as fit in a time
budget, in chunks, from ``engine.neighbour_lists`` (the neighbour index, see :mod:`streamer.core.serving`),
and returns each written list's age (seconds from becoming due to written).
"""

from __future__ import annotations

import time
from itertools import islice

import numpy as np

__all__ = ["DueLists", "refresh", "CHUNK"]

CHUNK = 256  # most lists per engine query and per pipelined write
SCAN_FACTOR = 8  # choose ranks at most this many times the lists it picks


class DueLists:
    """``item -> [due since (wall clock), changes, urgent]``; iterates over the items."""

    def __init__(self):
        self.entries: dict[str, list] = {}
        self.rate = 2000.0  # lists written per second of refresh (running estimate: how many to choose)
        self.urgent_items: set[str] = set()

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __contains__(self, item) -> bool:
        return item in self.entries

    def mark(self, items, now: float, urgent: bool = False) -> None:
        entries = self.entries
        for item in items:
            entry = entries.get(item)
            if urgent:
                self.urgent_items.add(item)
            if entry is None:
                entries[item] = [now, 1, urgent]
            else:
                entry[1] += 1
                entry[2] = entry[2] or urgent

    def pop(self, item, default=None):
        self.urgent_items.discard(item)
        return self.entries.pop(item, default)

    def clear(self) -> None:
        self.entries.clear()
        self.urgent_items.clear()

    def urgent(self) -> list[str]:
        return [item for item in self.urgent_items if item in self.entries]

    def choose(self, limit: int, now: float, max_wait: float) -> list[str]:
        """Up to ``limit`` items: urgent, then waiting longer than ``max_wait`` (oldest first), then most changed.

        Only the ``SCAN_FACTOR * limit`` longest-waiting entries are ranked (the dict is in due order), so a
        large backlog costs a refresh O(limit), and whatever waits longest is always among the candidates."""
        entries = self.entries
        if not entries:
            return []
        items = list(islice(entries, SCAN_FACTOR * limit))
        values = [entries[item] for item in items]
        since = np.array([entry[0] for entry in values], np.float64)
        changes = np.array([entry[1] for entry in values], np.int64)
        urgent = np.array([entry[2] for entry in values], bool)
        tier = np.where(urgent, 0, np.where(now - since >= max_wait, 1, 2))
        order = np.lexsort((since, np.where(tier == 2, -changes, 0), tier))[:limit]
        chosen = [items[index] for index in order.tolist()]
        late_urgent = [item for item in self.urgent_items if item in entries and item not in set(chosen)]
        return late_urgent + chosen[:max(0, limit - len(late_urgent))]


def refresh(sink, engine, count: int, limit: int, budget_seconds: float, max_wait: float,
            only: list[str] | None = None, clock=time.time) -> list[float]:
    """Rewrite due lists (``only`` these, when given) for up to ``budget_seconds``; the ages of those written."""
    due, ages = sink.neighbours_due, []
    began = time.monotonic()
    now = clock()
    if only is None:
        only = due.choose(min(limit, max(CHUNK, int(2 * due.rate * budget_seconds))), now, max_wait)
    chosen, written_count = only, 0
    chunk = max(16, min(CHUNK, int(due.rate * budget_seconds / 4)))  # about 4 chunks per budget
    for start in range(0, len(chosen), chunk):
        part = [item for item in chosen[start:start + chunk] if item in due]
        keys, args, lists = [], [], []
        for item, neighbours in zip(part, engine.neighbour_lists(part, count)):
            if not neighbours and engine.vector(item) is None:
                continue
            keys.append(sink.keys.neighbours(item))
            args.append(len(neighbours))
            for other, score in neighbours:
                args.extend((float(score), other))
            lists.append((item, [other for other, _ in neighbours]))
        if keys:
            sink.queue_lists([("neighbours", keys, args)], lists)  # written with the sink's next snapshot
        written = clock()
        for item in part:
            entry = due.pop(item)
            if entry is not None:
                ages.append(max(0.0, written - entry[0]))
        written_count += len(part)
        if time.monotonic() - began > budget_seconds:
            break
    elapsed = time.monotonic() - began
    if written_count >= chunk and elapsed > 0:
        due.rate = 0.7 * due.rate + 0.3 * written_count / elapsed
    return ages
