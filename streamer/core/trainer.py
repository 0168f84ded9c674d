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
from typing import Any, Iterable

import numpy as np

from streamer.core.batches import BatchLearning, LearnReport
from streamer.core.delta import start_tracking
from streamer.core.learning import COUNTER_FILL, COUNTER_REPLAYED, COUNTER_SIZE, COUNTER_TOTAL, Hyper, ReplayArrays
from streamer.core.lifecycle import evict_least_used, release_rows, upsert_items
from streamer.core.overlap import Overlap
from streamer.core.parallel import new_work, rng_streams
from streamer.core.replay_debt import ReplayDebt, draw_replay
from streamer.core.random import new_state
from streamer.core.sessions import UserTable, session_weights
from streamer.core.serving import Serving
from streamer.core.settings import TrainerSettings
from streamer.core.sgns import ITEM_LIVE
from streamer.core.attributes import AttributeAffinity
from streamer.core.observed_pairs import ObservedPairs
from streamer.core.similarity import served_vectors
from streamer.events import InvalidRecord, parse_catalog_update
from streamer.core.vocab import ItemTable

__all__ = ["Trainer", "LearnReport", "TrainerSettings"]

_INFINITY = math.inf


class Trainer(Serving, BatchLearning):
    """Online skip-gram with negative sampling over a growing item vocabulary. See :class:`TrainerSettings`."""

    def __init__(self, **settings: Any):
        self.settings = TrainerSettings(**settings)
        self._reset_state()

    def _reset_state(self) -> None:
        settings = self.settings
        self._items = ItemTable(settings.vector_size, partners=settings.cooccurrence_partners)
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
        self._recent_times = np.empty(0, np.float64)  # the last watermark_quorum - 1 event times
        self._next_maintenance = -_INFINITY
        self._pending_retired: set[str] = set()
        self._overlap = Overlap()
        start_tracking(self)  # deltas count from here (a checkpoint store writes a base snapshot first)
        self._reset_serving()
        self._affinity = AttributeAffinity(lambda: (self._items, self._replay.pairs), settings.attribute_weight,
                                           seed=settings.seed)
        self._similar.sources.append(self._affinity.source)  # the catalog: leaders of the query's attributes
        self._similar.terms.append(self._attribute_term)
        self._similar.query_scales = self._vector_scales  # a rare query's young vectors give way to the counts
        # observed co-occurrence: the query's most observed partners, and log(1 + count) in the score
        self._observed = ObservedPairs(lambda: (self._items, self._users, self._replay), settings.cooccurrence_weight,
                                       settings.window, settings.session_gap)
        self._similar.sources.append(self._observed.source)
        self._similar.terms.append(self._observed.term)

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
        self._observed.follow()  # after a checkpoint load: its session rings start from the engine's
        self._deferring = not replay
        try:
            self._learn_records(events, report)
        finally:
            self._overlap.settle()
            self._deferring = False
        return report

    @property
    def replay_debt(self) -> int:
        """Replay draws owed by ``learn(..., replay=False)`` and not yet paid by :meth:`replay`."""
        return self._debt.owed

    @property
    def replay_debt_limit(self) -> int:
        """The most debt kept: ``replay_passes - interleaved_passes`` draws per pair the backlog log holds
        (``LOG_FACTOR * replay_buffer`` pairs)."""
        return self._debt.limit

    def replay(self, max_pairs: int | None = None, threads: int | None = None) -> int:
        """Spare-time hook: draw ``max_pairs`` pairs (default: the whole :attr:`replay_debt`) from the replay buffer
        and train them; the draws pay the debt. Returns the pairs trained (breaks A+B == A,B equality).
        ``threads`` (default: ``workers``; 0 = every core numba uses) other than 1 trains on that many cores at
        once (Hogwild, see :func:`streamer.core.parallel.replay_threads`: not bit-reproducible); 1 is deterministic."""
        settings = self.settings
        draws, logged = self._debt.pay(max_pairs), self._debt.log()
        source = self._replay
        if logged is not None:  # the pairs of the backlog the debt was run up on (uniform draws over all of it)
            counters = np.zeros(COUNTER_SIZE, np.int64)
            counters[COUNTER_FILL] = len(logged)
            source = ReplayArrays(logged, counters)
        threads = settings.workers if threads is None else max(0, int(threads))
        arrays = self._items.arrays  # negatives from an alias table of the noise distribution (replay_debt)
        table = self._debt.noise_table(arrays.noise_weights, int(self._replay.counters[COUNTER_TOTAL]),
                                       self._items.releases) if draws > 0 else None
        trained = draw_replay(arrays, source, self._hyper, self._rng, threads, settings.vector_size,
                              settings.negative, draws, table)
        if logged is not None:
            self._replay.counters[COUNTER_REPLAYED] += source.counters[COUNTER_REPLAYED]
        if not self._debt.owed:
            self._debt.clear_log()
        return trained

    def catalog(self, updates: Iterable[Any]) -> LearnReport:
        """Apply catalog upserts (create/re-attribute items) and retirements, in order; invalid ones are returned.
        Runs of upserts are applied together (:func:`upsert_items`); with ``max_items`` one at a time (each may
        evict first)."""
        report, run = LearnReport(), []
        items, max_items = self._items, self.settings.max_items
        for record in updates:
            try:
                update = parse_catalog_update(record)
            except InvalidRecord as error:
                report.rejected.append((record, error.reason))
                continue
            ts = update.ts if update.ts is not None else max(self._watermark, 0.0)
            report.accepted += 1
            if update.op == "upsert":
                run.append((update.item, update.attrs, ts))
                if max_items is None:
                    continue
                if update.item not in items.rows and items.live_count >= max_items:
                    self._released(evict_least_used(items, self._users, self._replay.pairs, max_items))
            upsert_items(items, run, self.settings)  # each item its own stream (prior_seed)
            run = []
            if update.op == "retire":
                row = items.rows.get(update.item)
                if row is not None:
                    release_rows(items, self._users, self._replay.pairs, np.array([row]))
                items.retire(update.item)
                self._released({update.item})
        upsert_items(items, run, self.settings)
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

    def item_ids(self) -> list[str]:
        """The served items (retired excluded), in row order: the ids of :meth:`vectors` without the copy."""
        ids = self._items.ids
        return [ids[row] for row in self._items.live_rows().tolist()]

    def user_ids(self) -> list[str]:
        """Users with a slot (an open session or one not swept yet): those :meth:`user_vector` may answer."""
        return list(self._users.slots)

    def vector(self, item: str) -> np.ndarray | None:
        row = self._live_row(item)
        return None if row is None else self._served(np.array([row]))[0]

    def _live_row(self, item: str) -> int | None:
        row = self._items.rows.get(item)
        if row is None or self._items.arrays.status[row] != ITEM_LIVE:
            return None
        return row

    def _attribute_term(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray | None:
        """The catalog's score term (:mod:`streamer.core.attributes`), its lift measured on the stream."""
        return self._affinity.term(queries, candidates, self._affinity.refresh(self._event_count))

    def _vector_scales(self, queries: np.ndarray) -> np.ndarray | None:
        """Factors on the queries' dot and cosine terms (:meth:`AttributeAffinity.vector_scales`)."""
        return self._affinity.vector_scales(queries, self._items.arrays.counts, self._affinity.refresh(self._event_count),
                                            self.settings.cold_query_events)

    def _apply_releases(self) -> None:
        """Released rows also leave the observed co-occurrence table (both sides), before serving forgets them."""
        if self._items.freed:
            self._observed.forget_rows(np.unique(np.array(self._items.freed, np.int64)))
        super()._apply_releases()

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

    def take_retired(self) -> set[str]:
        """Ids retired, evicted or expired since the last call (and not back since)."""
        retired = {item for item in self._pending_retired if item not in self._items.rows}
        self._pending_retired.clear()
        return retired

    @property
    def event_count(self) -> int:
        return self._event_count

    @property
    def change_mark(self) -> tuple[int, int, int]:
        """Differs whenever the state changed: events learned, replay draws made (spare-time replay changes
        vectors without new events or offsets), debt owed. A checkpoint compares it with the one it saved."""
        return self._event_count, int(self._replay.counters[COUNTER_REPLAYED]), self._debt.owed

    @property
    def item_count(self) -> int:
        return int(np.count_nonzero(self._items.arrays.status == ITEM_LIVE))

    def item_counts(self) -> dict[str, int]:
        """Events counted per known item, cumulative over the stream (audits: ``streamer soak`` compares them
        with what it produced)."""
        counts = self._items.arrays.counts
        return {item: int(counts[row]) for item, row in self._items.rows.items()}

    @property
    def open_session_count(self) -> int:
        return self._users.open_count(self._watermark, self.settings.session_gap)

    @property
    def watermark(self) -> float:
        """Event time: the latest time ``watermark_quorum`` events in a row have reached (-inf before any event)."""
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
