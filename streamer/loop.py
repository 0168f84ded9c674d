"""The lease holder's loop: poll → decode → validate → learn → mark dirty → flush → checkpoint → commit.

Flushes are snapshots (ids + copied vectors) written to Redis by a publisher thread (:mod:`streamer.io.publisher`)
while the loop learns on (:mod:`streamer.flushing`); spare time pays the replay debt (:mod:`streamer.spare_time`).
Redis restarts are seen by the lease renewer. Kafka errors are retried by the client and logged; commits that fail
are retried at the next checkpoint.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING

from kafka.errors import KafkaError
from redis.exceptions import RedisError

from streamer.config import Settings
from streamer.core.live_quality import LiveQuality
from streamer.core.warmup import warm_up
from streamer.flushing import Flushing
from streamer.ingest import Ingestor
from streamer.io.backoff import Backoff
from streamer.io.checkpoint import Checkpoint, CheckpointStore
from streamer.io.dead_letter import DeadLetterQueue
from streamer.io.fresh_start import start_without_state
from streamer.io.group_rescue import JoinWatch, delete_group
from streamer.io.kafka_source import KafkaSource, make_producer
from streamer.io.lease import Lease
from streamer.io.process_source import ProcessSource
from streamer.io.publisher import Publisher
from streamer.io.redis_sink import FencedError, RedisSink
from streamer.io.version_ceiling import VersionCeiling
from streamer.keys import Keys
from streamer.logs import log_event
from streamer.metrics import Metrics
from streamer.spare_time import SpareTimeReplay
from streamer.status import Status

if TYPE_CHECKING:
    from streamer.app import Daemon

__all__ = ["ActiveLoop"]

logger = logging.getLogger("streamer.daemon")


class ActiveLoop(SpareTimeReplay, Flushing):
    """The lease holder's loop: one engine, its sinks, its source and its checkpoint."""

    def __init__(self, daemon: Daemon, client, lease: Lease):
        from streamer.core.trainer import Trainer

        self.daemon, self.settings, self.metrics, self.lease = daemon, daemon.settings, daemon.metrics, lease
        settings, self.health = self.settings, daemon.health
        self.health.set("engine", False, "kernels not compiled yet")
        self.health.set("group", False, "not subscribed yet")
        store = CheckpointStore(settings.checkpoint_dir, settings.compact_ratio)
        with self.health.long_step("loading the checkpoint"):
            engine, manifest = store.load(Trainer.load)
        self.client, self.state_found = client, engine is not None
        if engine is None:
            engine = Trainer(**settings.engine_knobs)
        elif settings.engine_knobs and any(getattr(engine.settings, name) != value
                                           for name, value in settings.engine_knobs.items()):
            log_event(logger, logging.WARNING, "engine_knobs_ignored", note="the checkpoint keeps its own knobs")
        self.engine = engine
        log_event(logger, logging.INFO, "model_loaded", checkpoint=manifest.sequence, events=engine.event_count,
                  items=engine.item_count, model_id=manifest.model_id)
        self.sink = RedisSink(client, Keys(settings.namespace), lease, settings.user_ttl,
                              settings.neighbours_count, manifest.model_id)
        self.sink.restore_pending(manifest.pending)
        self.sink.versions = VersionCeiling(settings.checkpoint_dir, manifest.model_id)
        self.dead_letters = DeadLetterQueue(settings.dead_letter_topic, lambda: make_producer(settings),
                                            on_add=lambda reason: self.metrics.dead_letters.labels(reason).inc())
        source_type = ProcessSource if settings.fetcher == "process" else KafkaSource
        self.source = source_type(settings, on_revoked=self._on_revoked)
        self.source.learned = dict(manifest.offsets)
        if manifest.fell_back:  # a checkpoint file was unusable: re-read what the state before it had not learned
            self.source.follow_committed = False
        self.source.topic_ids = dict(manifest.topic_ids)  # saved with the offsets, in the same manifest
        self.publisher = Publisher(self.sink)
        self.checkpoint = Checkpoint(store, manifest, self._publish_for_checkpoint, self.dead_letters,
                                     self.source, self._pending_for_checkpoint, background=True,
                                     in_flight=lambda: set(self.sink.in_flight_snapshots))
        self.live = _live_quality(settings, engine, self.sink, self.metrics)
        self.ingestor = Ingestor(engine, self.dead_letters, self.sink, settings.max_message_bytes,
                                 settings.max_future_seconds, observe=self.live and self.live.observe,
                                 publish_rule=(settings.publish_threshold, settings.publish_max_age))
        self.status = Status(self)
        self.redis_backoff = Backoff("redis_unavailable")
        self.kafka_backoff = Backoff("kafka_unavailable")
        self.join_watch = JoinWatch(settings.group_join_timeout)
        self.lost_lease = threading.Event()
        self.checkpoint_error: Exception | None = None  # of the last checkpoint (None: it succeeded)
        self.redis_restarted = threading.Event()  # set by the lease renewer: a new Redis run_id
        self._server_id: str | None = None
        self.last_flush_seconds = 0.0
        self.replayed_pairs = 0  # spare-time replay (replay_mode=spare)
        self.replayed_untaken = False  # replay moved vectors not yet taken for publishing
        self.last_spare_take, self.spare_take_seconds = -math.inf, 0.0

    def run(self) -> None:
        renewer = threading.Thread(target=self._renew_lease, name="lease-renewer", daemon=True)
        renewer.start()
        try:
            if self.settings.create_index:
                _quietly(lambda: self.sink.create_index(self.engine.settings.vector_size))
            if not self.state_found:  # before compiling: a refusal comes at once
                self._start_without_state()
            _quietly(lambda: self._watch_server(self.sink.server_id()))
            _quietly(lambda: self.sink.continue_versions(self.engine.event_count))  # never below what was published
            with self.health.long_step("compiling kernels"):
                seconds = warm_up(self.engine.settings)
            self.health.set("engine", True)
            log_event(logger, logging.INFO, "engine_compiled", seconds=round(seconds, 3))
            self._open_source()
            self._loop()
            if self.lost_lease.is_set():
                raise FencedError("lease lost while running")
            self.sink.add_items(self.ingestor.take_waiting(), None)  # what a publish threshold held back goes too
            if not self.checkpoint_now(force=True) and self.checkpoint_error is not None:
                log_event(logger, logging.ERROR, "final_checkpoint_failed", error=repr(self.checkpoint_error),
                          note="what was learned since the last checkpoint is not saved; exiting with 1")
                self.daemon.exit_code = 1
        finally:
            self.lost_lease.set()  # stops the renewer
            self.checkpoint.close()
            # a stop leaves snapshots still out after its final checkpoint's wait behind (Redis hung; they are pending
            # in the checkpoint); back to standby waits for them (they must not land after a next holder's writes)
            stop_wait = 0.0 if self.publisher.in_flight else self.settings.redis_timeout
            self.publisher.close(stop_wait if self.daemon.stopping.is_set() else None)
            _quietly(self.source.close)
            _quietly(self.dead_letters.close)

    def _open_source(self) -> None:
        while not self.daemon.stopping.is_set():
            self.health.beat()
            try:
                self.source.open()
                self.kafka_backoff.reset()
                return
            except KafkaError as error:
                self.kafka_backoff.failed(error, bootstrap_servers=self.settings.bootstrap_servers)

    def _start_without_state(self) -> None:
        """No checkpoint: a first start, a refusal or ``--reset-model`` (:mod:`streamer.io.fresh_start`)."""
        while not self.daemon.stopping.is_set():
            self.health.beat()
            try:
                start = start_without_state(self.settings, self.client, self.lease)
            except KafkaError as error:
                self.kafka_backoff.failed(error, bootstrap_servers=self.settings.bootstrap_servers)
                continue
            except (RedisError, OSError) as error:
                self.redis_backoff.failed(error)
                continue
            if start is not None:  # a new model: read everything again, whatever the group committed
                self.source.learned, self.source.follow_committed = dict(start), False
            return

    def _loop(self) -> None:
        settings, stopping = self.settings, self.daemon.stopping
        now = time.monotonic()
        next_flush, next_neighbours = now + settings.flush_interval, now + settings.neighbours_interval
        next_checkpoint = now + settings.checkpoint_interval
        timeout_ms = max(1, int(min(settings.flush_interval, 0.1) * 1000))
        spare, assigned = False, None
        while self.source.is_open and not stopping.is_set() and not self.lost_lease.is_set():
            self.health.beat()
            if bool(self.source.assigned) != assigned:
                assigned = bool(self.source.assigned)
                self.health.set("group", assigned, "joining the consumer group: no partition assigned yet")
            waited = self.join_watch.update(assigned)
            if waited is not None:
                self._rejoin(waited)
                continue
            try:
                batches = self.source.poll(0 if spare and self.engine.replay_debt else timeout_ms)
            except KafkaError as error:
                self.kafka_backoff.failed(error, sleep=False)
                continue
            polled = sum(len(records) for _, records in batches)
            replay = True if settings.replay_mode == "inline" else self._keeping_up(polled)
            for partition, records in batches:
                self._ingest(partition, records, replay)
            spare = self._spare_time(polled)
            if spare and self.engine.replay_debt:
                self._replay_owed()
            if self.publisher.in_flight:
                self._settle(self.publisher.collect())
            if self.redis_restarted.is_set():
                self.redis_restarted.clear()
                self.sink.republish_all(self.engine.item_ids(), self.engine.user_ids())
            now = time.monotonic()
            if now >= next_flush or len(self.sink.dirty) >= settings.flush_items:
                next_flush = now + settings.flush_interval
                self._take_replayed(spare)
                if self.sink.pending > self.sink.in_flight:
                    self.publish()
            if now >= next_neighbours or (spare and self.sink.neighbours_due and not self.engine.replay_debt):
                next_neighbours = self._refresh_lists(now, spare and bool(self.engine.replay_debt))
            if now >= next_checkpoint:
                next_checkpoint = now + settings.checkpoint_interval
                self.checkpoint_now()
            elif self.checkpoint.in_flight:
                self.settle_checkpoint()
            if self.status.due(now):
                self.status.report(now)

    def _rejoin(self, waited: float) -> None:
        """Subscribed without a partition for too long (a wedged group, :mod:`streamer.io.group_rescue`):
        leave, delete the group, join again. Not ready meanwhile."""
        group = self.settings.group
        log_event(logger, logging.ERROR, "group_wedged", group=group, seconds=round(waited, 1),
                  note="subscribed without any partition; deleting the group and joining again")
        self.health.set("group", False, f"wedged: no partition for {waited:.0f} s; rejoining")
        _quietly(self.source.close)
        try:
            outcome = delete_group(self.settings)
        except KafkaError as error:
            outcome = repr(error)
        log_event(logger, logging.WARNING, "group_rejoin", group=group, delete_group=outcome)
        self._open_source()
        self.join_watch.reset()

    def _ingest(self, partition, records: list, replay: bool) -> None:
        """Decode → validate → learn → mark dirty one partition's batch, then advance its offset."""
        result = self.ingestor.process(records, catalog=partition.topic == self.settings.catalog_topic, replay=replay)
        self.source.mark_learned(partition, records[-1].offset + 1)
        self.metrics.events.inc(result.events)
        self.metrics.catalog_updates.inc(result.catalog_updates)
        self.sink.add_lists_due(self.engine.take_lists_due())  # lists holding a released item
        if result.catalog_updates:
            self.publish(force=True)  # a new item is usable at once, before its first click
            self._refresh_neighbours(self.sink.neighbours_due.urgent())  # ... with its list; retired: out of lists

    def _on_revoked(self, revoked) -> None:
        if revoked:
            self.checkpoint_now(force=True)

    def _renew_lease(self) -> None:
        """The renewer thread: renew the lease and watch the server's run_id, so that a Redis restart is
        noticed even while the loop is idle (redis-py reconnects silently)."""
        while not self.lost_lease.wait(self.lease.renew_interval):
            try:
                if not self.lease.renew():
                    self.health.set("lease", False, "fenced: another daemon took the namespace lease")
                    log_event(logger, logging.ERROR, "lease_fenced", holder=self.lease.holder())
                    self.lost_lease.set()
                self._watch_server(self.sink.server_id())
            except (RedisError, OSError) as error:
                log_event(logger, logging.WARNING, "lease_renew_failed", error=repr(error))

    def _watch_server(self, server_id: str | None) -> None:
        if self._server_id is not None and server_id != self._server_id:
            log_event(logger, logging.WARNING, "redis_restarted", previous=self._server_id, run_id=server_id,
                      republish=self.engine.item_count)
            self.redis_restarted.set()
        self._server_id = server_id


def _live_quality(settings: Settings, engine, sink: RedisSink, metrics: Metrics) -> LiveQuality | None:
    """The live check (None when ``live_sample_rate`` is 0), fed the neighbour lists the sink writes."""
    if not settings.live_sample_rate:
        metrics.live_quality = None
        return None
    inherited = engine.vectors()[0] if engine.item_count else ()  # restored from a checkpoint: lists in Redis
    live = LiveQuality(settings.live_sample_rate, settings.live_window, settings.live_shadow_items,
                       settings.live_shadow_pairs, settings.live_sessions, seed=engine.settings.seed,
                       inherited=inherited)
    sink.on_neighbours = live.published
    metrics.live_quality = live
    return live


def _quietly(action) -> None:
    try:
        action()
    except (RedisError, KafkaError, OSError) as error:
        log_event(logger, logging.WARNING, "cleanup_failed", action=getattr(action, "__name__", "?"),
                  error=repr(error))
