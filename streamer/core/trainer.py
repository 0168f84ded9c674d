"""Trainer: the streaming Item2vec engine — events in, vectors out, nothing else (no I/O, no clock).

>>> trainer = Trainer(vector_size=8, seed=3)
>>> trainer.learn([("u1", "a", 0.0), ("u1", "b", 1.0), ("u2", "a", 2.0), ("u2", "", 3.0)]).accepted
3
>>> ids, vectors = trainer.vectors()
>>> sorted(ids), vectors.shape
(['a', 'b'], (2, 8))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable

import numpy as np

from streamer.core.columns import maintenance_points, plain_columns
from streamer.core.learning import (COUNTER_FILL, COUNTER_NEXT, COUNTER_PAIRS, COUNTER_REPLAYED, COUNTER_SIZE, Hyper,
                                    ReplayArrays, learn_events)
from streamer.core.lifecycle import evict_least_used, expire_stale, release_rows, upsert_item
from streamer.core.overlap import Overlap
from streamer.core.parallel import learn_parallel, new_work, rng_streams
from streamer.core.replay_debt import ReplayDebt, draw_replay
from streamer.core.random import new_state
from streamer.core.sessions import EVENT_LATE, UserTable, session_weights
from streamer.core.settings import TrainerSettings
from streamer.core.sgns import ITEM_LIVE
from streamer.core.similarity import score_candidates, served_vectors, top_k
from streamer.events import Event, InvalidRecord, is_plain_event, parse_catalog_update, parse_event
from streamer.core.vocab import ItemTable

__all__ = ["Trainer", "LearnReport", "TrainerSettings"]

_INFINITY = math.inf


@dataclass
class LearnReport:
    """What a ``learn``/``catalog`` call did: records accepted, and rejected ones with their reason."""

    accepted: int = 0
    rejected: list[tuple[Any, str]] = field(default_factory=list)


class _SlowPath(Exception):
    pass


class Trainer:
    """Online skip-gram with negative sampling over a growing item vocabulary. See :class:`TrainerSettings`."""

    def __init__(self, **settings: Any):
        self.settings = TrainerSettings(**settings)
        self._reset_state()

    def _reset_state(self) -> None:
        settings = self.settings
        self._items = ItemTable(settings.vector_size)
        self._users = UserTable(settings.window)
        self._replay = ReplayArrays(np.full((settings.replay_buffer, 2), -1, np.int32), np.zeros(COUNTER_SIZE, np.int64))
        self._rng = new_state(settings.seed, rng_streams(settings.workers))
        self._hyper = Hyper(
            settings.window, settings.negative, float(settings.alpha), float(settings.subsample),
            float(settings.learning_rate), np.float32(settings.accum_initial), float(settings.session_gap),
            settings.max_session_length, float(settings.lateness), settings.replay_passes,
            float(settings.init_noise), bool(settings.dynamic_window), float(settings.backward_weight),
            float(settings.distance_power),
            math.inf if settings.popularity_half_life is None else float(settings.popularity_half_life),
        )
        # replay deferred: ``interleaved_passes`` of the passes inline, the rest owed
        interleaved = min(settings.interleaved_passes, settings.replay_passes)
        self._hyper_deferred = self._hyper._replace(replay_passes=interleaved)
        # several workers: two block buffers, one recorded while the other is trained (streamer.core.parallel)
        self._work = (new_work(self._hyper), new_work(self._hyper)) if settings.workers > 1 else None
        self._debt = ReplayDebt(settings.replay_passes - interleaved, settings.replay_buffer, seed=settings.seed)
        self._deferring = False
        self._event_count = 0
        self._watermark = -_INFINITY
        self._next_maintenance = -_INFINITY
        self._pending_retired: set[str] = set()
        self._overlap = Overlap()

    # ---- learning -------------------------------------------------------------------------------------

    def learn(self, events: Iterable[Any], replay: bool = True) -> LearnReport:
        """Learn events in order; invalid ones are skipped and returned in ``report.rejected``, never raised.

        ``replay=False`` defers the inline replay (``replay_passes`` draws per pair learned): only
        ``interleaved_passes`` of them run now, the others are owed: :attr:`replay_debt` grows by those draws
        (at most :attr:`replay_debt_limit`) and :meth:`replay` pays it later, e.g. when a stream leaves spare time.

        Each full batch of ``batch_size`` events is trained on a background thread while the next one is
        prepared (:mod:`streamer.core.overlap`); the last one runs in the caller's thread, and nothing is in
        flight when ``learn`` returns. With ``item_ttl`` set, expiry also ends a batch."""
        report = LearnReport()
        self._deferring = not replay
        try:
            self._learn_records(events, report)
        finally:
            self._overlap.settle()
            self._deferring = False
        return report

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
        settings = self.settings
        points, self._watermark, self._next_maintenance = maintenance_points(
            timestamps, self._watermark, self._next_maintenance, self._maintenance_interval())
        sweep_before = [float(timestamps[point]) - settings.session_gap - settings.lateness for point in points]
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
        if rows:
            self._submit(users, np.array(rows, np.int32), timestamps, records, points, sweep_before, report, wait)
        else:
            self._overlap.settle()
            for before_ts in sweep_before:
                self._users.sweep(before_ts)
        return True

    def _allocate_new(self, rows: list, item_ids: tuple, timestamps: np.ndarray, chunk: list,
                      report: LearnReport) -> list[int]:
        """Fill the rows of items seen for the first time, in order (retired ids are rejected); the rejected indices."""
        items, rejected = self._items, []
        for index in [index for index, row in enumerate(rows) if row is None]:
            item = item_ids[index]
            row = items.rows.get(item)
            if row is None:
                if item in items.retired:
                    report.rejected.append((chunk[index], "retired_item"))
                    rejected.append(index)
                    continue
                if items.full:
                    self._overlap.settle()  # the arrays are about to be copied into larger ones
                row = items.allocate(item, float(timestamps[index]))
            rows[index] = row
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
            if ts > watermark:
                if ts >= next_maintenance:  # event-time housekeeping before this event
                    if expiring:  # expiry releases rows: learn what came before, then expire at once
                        self._flush(batch, report, wait=True)
                        pending = 0
                        self._maintain(ts)
                    else:  # only user sweeps: done by the compiled call, at this point of the batch
                        add_sweep((len(batch[0]), ts - settings.session_gap - settings.lateness))
                    next_maintenance = self._next_maintenance = ts + self._maintenance_interval()
                watermark = self._watermark = ts
            row = item_rows.get(item)
            if row is None:
                if item in retired:
                    report.rejected.append((record, "retired_item"))
                    continue
                if max_items is not None and items.live_count >= max_items:
                    self._flush(batch, report, wait=True)
                    pending = 0
                    self._released(evict_least_used(items, self._users, self._replay.pairs, max_items))
                if items.full:
                    self._overlap.settle()  # the arrays are about to be copied into larger ones
                row = items.allocate(item, float(ts))
            add_user(user)
            add_row(row)
            add_ts(ts)
            add_record(record)
            pending += 1
            if pending >= limit:
                self._flush(batch, report)
                pending = 0
        self._flush(batch, report, wait=True)

    def _flush(self, batch: tuple[list, list, list, list, list], report: LearnReport, wait: bool = False) -> None:
        """Train the batch collected by the per-record path (see :meth:`_submit`) and empty it."""
        users, rows, stamps, records, sweeps = batch
        if not users:
            self._overlap.settle()
            for _, before_ts in sweeps:
                self._users.sweep(before_ts)
        else:
            self._submit(list(users), np.array(rows, np.int32), np.array(stamps, np.float64), records.copy(),
                         [at for at, _ in sweeps], [before_ts for _, before_ts in sweeps], report, wait)
        for part in batch:
            part.clear()

    def _submit(self, users, rows: np.ndarray, timestamps: np.ndarray, records: list, sweep_at: list,
                sweep_before: list, report: LearnReport, wait: bool) -> None:
        """Train one batch on the background thread (in this thread with ``wait``); the user sweeps run before
        the events at ``sweep_at``. User ids become slots here, once the previous batch and its sweeps settled."""
        self._overlap.settle()
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

    def _maintain(self, watermark: float) -> None:
        """Event-time housekeeping: recycle idle users' slots, expire items past their TTL."""
        settings = self.settings
        self._users.sweep(watermark - settings.session_gap - settings.lateness)
        if settings.item_ttl is not None:
            self._released(expire_stale(self._items, self._users, self._replay.pairs, watermark - settings.item_ttl))

    @property
    def replay_debt(self) -> int:
        """Replay draws owed by ``learn(..., replay=False)`` and not yet paid by :meth:`replay`."""
        return self._debt.owed

    @property
    def replay_debt_limit(self) -> int:
        """The most debt kept: ``replay_passes - interleaved_passes`` draws per pair the backlog log holds
        (``LOG_FACTOR * replay_buffer`` pairs)."""
        return self._debt.limit

    def replay(self, max_pairs: int | None = None) -> int:
        """Spare-time hook: draw ``max_pairs`` pairs (default: the whole :attr:`replay_debt`) from the replay buffer
        and train them; the draws pay the debt. Returns the pairs trained (breaks A+B == A,B equality)."""
        settings = self.settings
        draws, logged = self._debt.pay(max_pairs), self._debt.log()
        source = self._replay
        if logged is not None:  # the pairs of the backlog the debt was run up on (uniform draws over all of it)
            counters = np.zeros(COUNTER_SIZE, np.int64)
            counters[COUNTER_FILL] = len(logged)
            source = ReplayArrays(logged, counters)
        work = None if self._work is None else self._work[0]
        trained = draw_replay(self._items.arrays, source, self._hyper, self._rng, work, settings.workers,
                              settings.vector_size, settings.negative, draws)
        if logged is not None:
            self._replay.counters[COUNTER_REPLAYED] += source.counters[COUNTER_REPLAYED]
        if not self._debt.owed:
            self._debt.clear_log()
        return trained

    def catalog(self, updates: Iterable[Any]) -> LearnReport:
        """Apply catalog upserts (create/re-attribute items) and retirements; invalid ones are returned."""
        report = LearnReport()
        items = self._items
        for record in updates:
            try:
                update = parse_catalog_update(record)
            except InvalidRecord as error:
                report.rejected.append((record, error.reason))
                continue
            ts = update.ts if update.ts is not None else max(self._watermark, 0.0)
            if update.op == "retire":
                row = items.rows.get(update.item)
                if row is not None:
                    release_rows(items, self._users, self._replay.pairs, np.array([row]))
                items.retired.add(update.item)
                self._released({update.item})
            else:
                max_items = self.settings.max_items
                if update.item not in items.rows and max_items is not None and items.live_count >= max_items:
                    self._released(evict_least_used(items, self._users, self._replay.pairs, max_items))
                upsert_item(items, update.item, update.attrs, ts, self.settings, self._rng)
            report.accepted += 1
        return report

    # ---- reading --------------------------------------------------------------------------------------

    def _served(self, rows: np.ndarray) -> np.ndarray:
        return served_vectors(self._items.arrays, rows)

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """All served items (retired excluded) and their float32 vectors (input + output), (n, vector_size)."""
        rows = self._items.live_rows()
        ids = self._items.ids
        return [ids[row] for row in rows.tolist()], self._served(rows)

    def vectors_for(self, items: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """The served vectors of the live ones among ``items`` (in order), with one gather: (ids, (n, size))."""
        rows, status, found = self._items.rows, self._items.arrays.status, []
        for item in items:
            row = rows.get(item)
            if row is not None and status[row] == ITEM_LIVE:
                found.append((item, row))
        return [item for item, _ in found], self._served(np.array([row for _, row in found], np.int64))

    def vector(self, item: str) -> np.ndarray | None:
        row = self._live_row(item)
        return None if row is None else self._served(np.array([row]))[0]

    def _live_row(self, item: str) -> int | None:
        row = self._items.rows.get(item)
        if row is None or self._items.arrays.status[row] != ITEM_LIVE:
            return None
        return row

    def most_similar(self, item: str, k: int = 10) -> list[tuple[str, float]]:
        """Top-``k`` items for ``item`` by the model's own scores; never the item itself nor retired items."""
        return self.most_similar_many([item], k)[0]

    def most_similar_many(self, items: list[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """``most_similar`` for many queries with one matrix product (unknown queries give [])."""
        candidates = self._items.live_rows()
        query_rows = [self._live_row(item) for item in items]
        known = [index for index, row in enumerate(query_rows) if row is not None]
        results: list[list[tuple[str, float]]] = [[] for _ in items]
        if not known or candidates.size == 0:
            return results
        queries = np.array([query_rows[index] for index in known], np.int64)
        scores = score_candidates(self._items.arrays, queries, candidates, self.settings, self._watermark)
        ids = self._items.ids
        for position, index in enumerate(known):
            row_scores = scores[position]
            row_scores[candidates == queries[position]] = -np.inf
            best = top_k(row_scores, k + 1)
            results[index] = [(ids[candidates[c]], float(row_scores[c])) for c in best.tolist()
                              if candidates[c] != queries[position]][:k]
        return results

    def user_vector(self, user: str) -> np.ndarray | None:
        """Mean of the open session's item vectors, weighted by ``user_decay ** age``; None if unknown."""
        slot = self._users.slots.get(user)
        if slot is None:
            return None
        ring = self._users.arrays.ring[slot, : self._users.arrays.ring_size[slot]]
        rows = np.array([row for row in ring.tolist() if row >= 0 and self._items.arrays.status[row] == ITEM_LIVE])
        if rows.size == 0:
            return None
        weights = session_weights(rows.size, self.settings.user_decay).astype(np.float32)
        return (weights[:, None] * self._served(rows)).sum(axis=0)

    def take_changed(self) -> set[str]:
        """Ids whose served vector changed since the last call (trained, created, initialised)."""
        count = len(self._items.ids)
        dirty = self._items.arrays.dirty
        rows = np.flatnonzero(dirty[:count])
        dirty[rows] = 0
        ids, status = self._items.ids, self._items.arrays.status
        return {ids[row] for row in rows.tolist() if status[row] == ITEM_LIVE}

    def take_retired(self) -> set[str]:
        """Ids retired, evicted or expired since the last call (and not back since)."""
        retired = {item for item in self._pending_retired if item not in self._items.rows}
        self._pending_retired.clear()
        return retired

    @property
    def event_count(self) -> int:
        return self._event_count

    @property
    def item_count(self) -> int:
        return int(np.count_nonzero(self._items.arrays.status == ITEM_LIVE))

    @property
    def open_session_count(self) -> int:
        return self._users.open_count(self._watermark, self.settings.session_gap)

    @property
    def watermark(self) -> float:
        """Latest event time seen (-inf before any event)."""
        return self._watermark

    # ---- persistence ----------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write an atomic, versioned checkpoint (see :mod:`streamer.core.persistence`)."""
        from streamer.core.persistence import save_trainer

        save_trainer(self, path)

    @classmethod
    def load(cls, path) -> "Trainer":
        """Read a checkpoint; a corrupt, truncated or foreign file raises CheckpointError."""
        from streamer.core.persistence import load_trainer

        return load_trainer(path)

    def __getstate__(self):
        from streamer.core.persistence import trainer_state

        return trainer_state(self)

    def __setstate__(self, state) -> None:
        from streamer.core.persistence import restore_state

        restore_state(self, *state)
