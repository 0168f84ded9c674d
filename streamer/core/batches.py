"""How ``Trainer.learn`` turns records into compiled calls: batching, id mapping, event-time housekeeping.

:class:`BatchLearning` is the part of :class:`streamer.Trainer` between the records and the compiled loop
(:mod:`streamer.core.learning`, :mod:`streamer.core.parallel`). A list of plain tuples is prepared a
whole batch at a time (:mod:`streamer.core.columns`); anything else, and every record when items are
bounded or expire, goes record by record, with the same result. Each full batch trains on a background
thread while the next one is prepared (:mod:`streamer.core.overlap`); user sweeps due within a batch run
inside its compiled call; owing replay (``learn(..., replay=False)``) also feeds the replay debt.

The event-time watermark (idle sweeps, item expiry, popularity decay) is the running maximum of the
*confirmed* event times: the minimum time of the last ``watermark_quorum`` events
(:func:`streamer.core.columns.confirmed_times`), so one event with a clock far ahead does not move it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable

import numpy as np

from streamer.core.columns import confirmed_times, maintenance_points, plain_columns
from streamer.core.learning import COUNTER_NEXT, COUNTER_PAIRS, learn_events
from streamer.core.lifecycle import evict_least_used, expire_stale
from streamer.core.parallel import learn_parallel
from streamer.core.sessions import EVENT_LATE
from streamer.events import Event, InvalidRecord, is_plain_event, parse_event

__all__ = ["BatchLearning", "LearnReport"]


@dataclass
class LearnReport:
    """What a ``learn``/``catalog`` call did: records accepted, and rejected ones with their reason."""

    accepted: int = 0
    rejected: list[tuple[Any, str]] = field(default_factory=list)


class _SlowPath(Exception):
    pass


class BatchLearning:
    """The batching half of :class:`streamer.Trainer` (uses its tables, replay state, debt and overlap)."""

    def _learn_records(self, events: Iterable[Any], report: LearnReport) -> None:
        """Batches of plain tuples are prepared whole (:mod:`streamer.core.columns`); anything else, and every
        batch when items are bounded or expire (eviction and expiry happen between two events), record by record."""
        settings = self.settings
        if settings.max_items is not None or settings.item_ttl is not None:
            self._learn_each(events, report)
            return
        iterator, limit = iter(events), settings.batch_size
        while True:
            chunk = list(islice(iterator, limit))
            if not chunk:
                return
            if not self._learn_columns(chunk, report, wait=len(chunk) < limit):
                self._learn_each(chunk, report)

    def _learn_columns(self, chunk: list, report: LearnReport, wait: bool) -> bool:
        """Learn ``chunk`` as one batch if every record is a plain valid tuple; False (nothing done) otherwise."""
        columns = plain_columns(chunk)
        if columns is None:
            return False
        users, item_ids, timestamps = columns
        confirmed, self._recent_times = confirmed_times(self._recent_times, timestamps, self.settings.watermark_quorum)
        points, self._watermark, self._next_maintenance = maintenance_points(
            confirmed, self._watermark, self._next_maintenance, self._maintenance_interval())
        sweep_before = [self._idle_before(float(confirmed[point])) for point in points]
        rows = list(map(self._items.rows.get, item_ids))
        records: list = chunk
        if None in rows:
            rejected = self._allocate_new(rows, item_ids, timestamps, chunk, report)
            if rejected:
                keep = np.ones(len(chunk), bool)
                keep[rejected] = False
                kept_before = np.cumsum(keep) - keep  # a sweep due before a rejected event moves to the next kept one
                points = [int(kept_before[point]) for point in points]
                users = [user for user, kept in zip(users, keep) if kept]
                rows = [row for row, kept in zip(rows, keep) if kept]
                records = [record for record, kept in zip(chunk, keep) if kept]
                timestamps = timestamps[keep]
        self._submit(users, np.array(rows, np.int32), timestamps, records, points, sweep_before, report, wait)
        return True

    def _allocate_new(self, rows: list, item_ids: tuple, timestamps: np.ndarray, chunk: list,
                      report: LearnReport) -> list[int]:
        """Fill the rows of items seen for the first time, in order (retired ids are rejected); the rejected indices.
        The new ids get their rows in one ``allocate``; when the arrays must grow (be copied into larger ones),
        the batch in flight settles first."""
        items, rejected, first_seen = self._items, [], {}
        for index in [index for index, row in enumerate(rows) if row is None]:
            item = item_ids[index]
            if item in items.retired:
                report.rejected.append((chunk[index], "retired_item"))
                rejected.append(index)
            elif item not in first_seen:
                first_seen[item] = float(timestamps[index])
        if first_seen:
            if items.room() < len(first_seen):
                self._overlap.settle()
            items.allocate(list(first_seen), np.fromiter(first_seen.values(), np.float64, len(first_seen)))
        held = items.rows
        for index in [index for index, row in enumerate(rows) if row is None]:
            rows[index] = held.get(item_ids[index])
        return rejected

    def _learn_each(self, events: Iterable[Any], report: LearnReport) -> None:
        """The per-record path: any record shape, invalid records, eviction and expiry between two events."""
        # a batch: user ids, item rows, timestamps, records, and the user sweeps due within it
        batch: tuple[list, list, list, list, list] = ([], [], [], [], [])
        add_user, add_row, add_ts, add_record, add_sweep = (part.append for part in batch)
        item_rows, retired, items = self._items.rows, self._items.retired, self._items
        settings = self.settings
        limit, max_items, expiring = settings.batch_size, settings.max_items, settings.item_ttl is not None
        watermark, next_maintenance, pending = self._watermark, self._next_maintenance, 0
        quorum = settings.watermark_quorum
        recent = deque(self._recent_times.tolist(), maxlen=quorum)  # the last event times, this one included
        for record in events:
            try:
                kind = type(record)
                if kind is tuple or kind is list:
                    user, item, ts = record
                elif kind is dict and len(record) == 3:
                    user, item, ts = record["user"], record["item"], record["ts"]
                elif kind is Event:
                    user, item, ts = record.user, record.item, record.ts
                else:
                    raise _SlowPath
                if not is_plain_event(user, item, ts):
                    raise _SlowPath
            except (_SlowPath, ValueError, KeyError, TypeError):
                try:
                    event = parse_event(record)
                except InvalidRecord as error:
                    report.rejected.append((record, error.reason))
                    continue
                user, item, ts = event.user, event.item, event.ts
            recent.append(ts)
            confirmed = min(recent) if len(recent) > 1 else ts
            if confirmed > watermark:
                if confirmed >= next_maintenance:  # event-time housekeeping before this event
                    if expiring:  # expiry releases rows: learn what came before, then expire at once
                        self._flush(batch, report, wait=True)
                        pending = 0
                        self._maintain(confirmed)
                    else:  # only user sweeps: done by the compiled call, at this point of the batch
                        add_sweep((len(batch[0]), self._idle_before(confirmed)))
                    next_maintenance = self._next_maintenance = confirmed + self._maintenance_interval()
                watermark = self._watermark = confirmed
            row = item_rows.get(item)
            if row is None:
                if item in retired:
                    report.rejected.append((record, "retired_item"))
                    continue
                if max_items is not None and items.live_count >= max_items:
                    self._flush(batch, report, wait=True)
                    pending = 0
                    self._released(evict_least_used(items, self._users, self._replay.pairs, max_items))
                if not items.room():
                    self._overlap.settle()  # the arrays grow (are copied): the batch in flight settles first
                row = int(items.allocate([item], float(ts))[0])
            add_user(user)
            add_row(row)
            add_ts(ts)
            add_record(record)
            pending += 1
            if pending >= limit:
                self._flush(batch, report)
                pending = 0
        self._recent_times = np.array(list(recent)[len(recent) - quorum + 1:] if len(recent) == quorum else recent,
                                      np.float64)
        self._flush(batch, report, wait=True)

    def _flush(self, batch: tuple[list, list, list, list, list], report: LearnReport, wait: bool = False) -> None:
        """Train the batch collected by the per-record path (see :meth:`_submit`) and empty it."""
        users, rows, stamps, records, sweeps = batch
        self._submit(list(users), np.array(rows, np.int32), np.array(stamps, np.float64), records.copy(),
                     [at for at, _ in sweeps], [before_ts for _, before_ts in sweeps], report, wait)
        for part in batch:
            part.clear()

    def _submit(self, users, rows: np.ndarray, timestamps: np.ndarray, records: list, sweep_at: list,
                sweep_before: list, report: LearnReport, wait: bool) -> None:
        """Train one batch on the background thread (in this thread with ``wait``); the user sweeps run before
        the events at ``sweep_at``. User ids become slots here, once the previous batch and its sweeps settled.
        A batch left empty (every record rejected) only runs its sweeps."""
        self._overlap.settle()
        if not users:
            for before_ts in sweep_before:
                self._users.sweep(before_ts)
            return
        outcome = np.zeros(len(users), np.int8)
        arguments = (self._users.slots_for(users), rows, timestamps, outcome)
        sweep_at, sweep_before = np.array(sweep_at, np.int64), np.array(sweep_before, np.float64)

        def finish(accepted: int) -> None:
            if accepted < len(outcome):
                report.rejected.extend((records[index], "late")
                                       for index in np.flatnonzero(outcome == EVENT_LATE).tolist())
            report.accepted += accepted
            self._event_count += accepted

        def work() -> int:
            accepted = self._learn_batch(arguments, sweep_at, sweep_before)
            self._users.collect_swept()
            self._items.offer(rows)  # counts changed: the attributes' leaders follow (no-op without a catalog)
            return accepted

        if wait:
            finish(work())
        else:
            self._overlap.start(work, finish)

    def _learn_batch(self, arguments: tuple, sweep_at: np.ndarray, sweep_before: np.ndarray) -> int:
        """The compiled calls over one batch; owing replay, also the debt and the backlog log. Events accepted."""
        deferring = self._deferring and self._debt.passes > 0
        hyper = self._hyper_deferred if deferring else self._hyper
        pairs_before = int(self._replay.counters[COUNTER_PAIRS])
        capacity = self._replay.pairs.shape[0]
        # Owing: cut the call so the ring buffer cannot wrap within one part; log each part's new pairs.
        size = len(arguments[0])
        step = max(1, (capacity - 1) // self.settings.window) if deferring and capacity > self.settings.window \
            else size
        accepted = 0
        for start in range(0, size, step):
            part = tuple(argument[start:start + step] for argument in arguments)
            last = start + step >= size  # sweeps due after the last event run with the last part
            due = (sweep_at >= start) & ((sweep_at < start + step) | last)
            part += (sweep_at[due] - start, sweep_before[due])
            written = int(self._replay.counters[COUNTER_NEXT])
            accepted += self._learn_part(hyper, part)
            self._observed.learn(*part[:4])  # the observed co-occurrence table (no-op when off)
            if deferring and capacity:
                fresh = (int(self._replay.counters[COUNTER_NEXT]) - written) % capacity
                self._debt.record(self._replay.pairs[(written + np.arange(fresh)) % capacity])
        if deferring:
            self._debt.accrue(int(self._replay.counters[COUNTER_PAIRS]) - pairs_before)
        return int(accepted)

    def _released(self, ids) -> None:
        """Items retired, evicted or expired: reported by take_retired; their rows may be reused, so the
        replay backlog log (which holds rows) is dropped (the rest of the debt draws from the ring buffer)."""
        if ids:
            self._pending_retired.update(ids)
            self._debt.clear_log()

    def _learn_part(self, hyper, arguments: tuple) -> int:
        """One compiled call over ``(user slots, item rows, timestamps, outcome, sweep_at, sweep_before)``;
        returns events accepted."""
        if self._work is None:
            return int(learn_events(self._items.arrays, self._users.arrays, self._replay, hyper, self._rng,
                                    *arguments))
        # several workers: serial bookkeeping, parallel (Hogwild) SGNS updates
        learn_parallel(self._items.arrays, self._users.arrays, self._replay, hyper, self._rng, self._work,
                       self.settings.workers, *arguments)
        return len(arguments[0]) - int(np.count_nonzero(arguments[3]))

    def _maintenance_interval(self) -> float:
        settings = self.settings
        interval = max(settings.session_gap + settings.lateness, 60.0)
        if settings.item_ttl is not None:
            interval = min(interval, settings.item_ttl / 8.0)
        return interval

    def _idle_before(self, watermark: float) -> float:
        """At event time ``watermark``, a user whose latest event is older than this can no longer continue
        a session: its slot is swept."""
        return watermark - self.settings.session_gap - self.settings.lateness

    def _maintain(self, watermark: float) -> None:
        """Event-time housekeeping: recycle idle users' slots, expire items past their TTL."""
        settings = self.settings
        self._users.sweep(self._idle_before(watermark))
        if settings.item_ttl is not None:
            self._released(expire_stale(self._items, self._users, self._replay.pairs, watermark - settings.item_ttl))
