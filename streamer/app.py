"""The daemon: poll → decode → validate → learn → mark dirty → flush to Redis → checkpoint → commit.

:class:`Daemon` only wires the steps. It waits as a standby until it holds the namespace lease, then
:class:`_Active` runs the loop until a stop is requested (SIGTERM/SIGINT) or the lease is lost.
Flushes are snapshots (ids + copied vectors) written to Redis by a publisher thread
(:mod:`streamer.io.publisher`) while the loop learns on; the loop never waits on Redis (at most 2
snapshots in flight, neighbour lists ride with them, Redis restarts are seen by the lease renewer), and a
checkpoint commits its offsets only once the snapshots it needs are written (a stop's checkpoint waits for
them). Redis errors never stop training: changed ids stay dirty (a failed snapshot's ids go back) and
land after reconnect (retried with backoff). Kafka errors are retried by the client and logged; commits that fail are retried at the
next checkpoint.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time

from kafka.errors import KafkaError
from redis.exceptions import RedisError

from streamer.config import Settings
from streamer.core.live_quality import LiveQuality
from streamer.core.warmup import warm_up
from streamer.errors import CheckpointError
from streamer.health import Health, serve
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
from streamer.io.redis_sink import FencedError, RedisSink, connect_redis
from streamer.io.version_ceiling import VersionCeiling
from streamer.keys import Keys
from streamer.logs import log_event
from streamer.metrics import Metrics
from streamer.status import Status

__all__ = ["Daemon"]

logger = logging.getLogger("streamer.daemon")
REPLAY_CHUNK = 1000  # replayed pairs per compiled call in spare time (a few ms)
SPARE_TAKE_INTERVAL = 1.0  # seconds between takes of what spare-time replay moved
OWING_TAKE_SHARE = 0.1  # ... and while a debt is owed, at most this share of the loop's time: a take of a whole moving
#   catalog (94k items: 0.3-0.5 s, mostly re-indexing) every second held it half its spare time (docs/neighbours.md)
OWING_LISTS_INTERVAL = 1.0  # least seconds between list refreshes in spare time while a debt is owed: the lists of
#   items the replay still moves are due again at the next take


class Daemon:
    """``Daemon(settings).run()`` until :meth:`request_stop`; returns the process exit code."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.stopping = threading.Event()
        self.active: _Active | None = None
        self.exit_code = 0  # 1 when the final checkpoint of a stop failed
        self.health = Health(settings.stall_timeout)
        self.health.set("lease", False, "waiting for the namespace lease")
        self.health.set("running", True)

    def install_signal_handlers(self) -> None:
        def handle(signum, _frame):
            if self.stopping.is_set():
                log_event(logger, logging.ERROR, "forced_exit", signal=signal.Signals(signum).name)
                os._exit(1)
            log_event(logger, logging.INFO, "stop_requested", signal=signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def request_stop(self, watchdog: bool = True) -> None:
        """Stop polling, flush, checkpoint, commit; a watchdog ends the process after ``shutdown_timeout``."""
        if watchdog and not self.stopping.is_set():
            timer = threading.Timer(self.settings.shutdown_timeout, _give_up, args=(self.settings.shutdown_timeout,))
            timer.daemon = True
            timer.start()
        self.health.set("running", False, "stopping")
        self.stopping.set()

    def run(self) -> int:
        settings = self.settings
        log_event(logger, logging.INFO, "starting", settings=repr(settings))
        server = serve(settings.metrics_port, self.health, self.metrics.registry)
        if server is not None:
            log_event(logger, logging.INFO, "http_serving", address=f"0.0.0.0:{server.port}",
                      paths="/metrics /healthz /readyz")
        client = connect_redis(settings)
        lease = Lease(client, Keys(settings.namespace), settings.lease_ttl)
        backoff = Backoff("redis_unavailable")
        try:
            while not self.stopping.is_set():
                if not lease.wait(self._standing_by, on_retry=backoff.failed):
                    break
                backoff.reset()
                self._hold_lease(client, lease)
        finally:
            lease.release_within(settings.redis_timeout)  # a hung Redis does not hold up the stop
            client.close()
            if server is not None:
                server.close()
        log_event(logger, logging.INFO, "stopped", exit_code=self.exit_code)
        return self.exit_code

    def _standing_by(self) -> bool:
        """``Lease.wait``'s stop test, called while waiting for the lease: waiting is progress."""
        self.health.beat()
        if not self.stopping.is_set():
            self.health.set("lease", False,
                            "waiting for the namespace lease (a standby while another daemon holds it)")
        return self.stopping.is_set()

    def _hold_lease(self, client, lease: Lease) -> None:
        self.metrics.lease_held.set(1)
        self.health.set("lease", True)
        try:
            self.active = _Active(self, client, lease)
            self.active.run()
        except FencedError as error:
            log_event(logger, logging.ERROR, "lease_lost", error=str(error), note="back to standby")
        finally:
            self.metrics.lease_held.set(0)
            self.health.set("lease", False, "lease lost or released")
            self.health.set("group", False, "not consuming")
            self.active = None


class _Active:
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
                                     self.source, self.sink.pending_snapshot, background=True,
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
                self._take_replayed()
                if self.sink.pending > self.sink.in_flight:
                    self.publish()
            if now >= next_neighbours or (spare and self.sink.neighbours_due and not self.engine.replay_debt):
                paying = spare and self.engine.replay_debt
                next_neighbours = now + (max(settings.neighbours_interval, OWING_LISTS_INTERVAL) if paying
                                         else settings.neighbours_interval)
                self._refresh_neighbours()
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

    def _keeping_up(self, polled: int) -> bool:
        """The loop keeps up with the stream: this poll is a short batch, no other fetched batch waits, and
        (almost) nothing is left at the broker. Such a batch is learned with its replay inline, as in
        process; under a backlog the replay is deferred (all but ``interleaved_passes``) and paid in spare
        time. Inline replay makes learning slower, so a stream that outgrows it turns into a backlog and
        the loop defers again. For a non-empty poll this is exactly :meth:`_spare_time`."""
        return polled > 0 and self._spare_time(polled)

    def _spare_time(self, polled: int) -> bool:
        """The loop has spare time: nothing was fetched for it (it would wait for the fetcher), or a short
        batch with (almost) no lag behind the broker. Fetched batches waiting for the loop never are:
        a backlog in hand goes first. Replay in the gaps of a backlog keeps a burst's replay close to
        the in-process (inline) one; it runs in slices of ``replay_slice`` seconds."""
        if polled >= self.settings.max_poll_records or self.source.has_waiting():
            return False
        lag = self.source.lag()
        return polled == 0 or (lag is not None and lag < self.settings.max_poll_records)

    def _replay_owed(self) -> None:
        """Pay the engine's replay debt in small chunks for at most ``replay_slice`` seconds, on ``replay_threads``
        cores (the loop has nothing else to do meanwhile)."""
        deadline = time.monotonic() + self.settings.replay_slice
        engine, trained = self.engine, 0
        while engine.replay_debt and time.monotonic() < deadline:
            trained += engine.replay(min(REPLAY_CHUNK, engine.replay_debt), threads=self.settings.replay_threads)
        self.replayed_pairs += trained
        self.metrics.replayed_pairs.inc(trained)
        self.replayed_untaken = True  # what moved is taken once per flush, not per slice (see _take_replayed)

    def _take_replayed(self) -> None:
        """Hand what spare-time replay moved to the sink (no freshness sample: no new event), at most once per
        ``SPARE_TAKE_INTERVAL``, and while a debt is left no sooner than the last take's cost allows
        (``OWING_TAKE_SHARE``): a row the replay touches many times is compared, re-indexed and published once;
        the debt paid, its last moves go at the next flush after ``SPARE_TAKE_INTERVAL``."""
        now = time.monotonic()
        interval = SPARE_TAKE_INTERVAL
        if self.engine.replay_debt:
            interval = max(interval, self.spare_take_seconds / OWING_TAKE_SHARE)
        if self.replayed_untaken and now >= self.last_spare_take + interval:
            self.replayed_untaken, self.last_spare_take = False, now
            self.sink.add_items(self.ingestor.take_changed(), None)
            self.spare_take_seconds = time.monotonic() - now

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

    def publish(self, force: bool = False, wait: bool = False, room: int = 0) -> bool:
        """Snapshot the dirty vectors for the publisher thread unless in backoff or ``publisher.depth``
        (+ ``room``) snapshots are in flight (Redis slow or hung: the loop never waits for it); ``wait``:
        until every snapshot is written. False when Redis is down (the failed ids are dirty again)."""
        submitted = (force or self.redis_backoff.ready()) and (
            wait or self.publisher.in_flight < self.publisher.depth + room)
        if submitted:
            self.sink.feed_republish(self.settings.flush_items)
            try:
                self.publisher.submit(self.sink.snapshot(self.engine))
            except (RedisError, OSError) as error:
                self._flush_failed(error)
                submitted = False
        if wait:  # even in backoff: the snapshots in flight settle (for at most redis_timeout: a hung Redis
            # does not hold up a rebalance or a stop; the commit then waits) before a checkpoint lists what is pending
            written = self._settle(self.publisher.drain(self.settings.redis_timeout))
            return written and submitted and not self.publisher.in_flight
        return submitted

    def _publish_for_checkpoint(self, force: bool) -> set[int] | None:
        """Submit what is pending for a checkpoint: the snapshots its commit waits for (empty: all written),
        or None when changes stay unsubmitted (Redis in backoff, or slow: the commit waits for a later
        checkpoint). ``force`` (rebalance, shutdown) waits until every snapshot is written."""
        self.publish(force, wait=force, room=1)
        if self.sink.unsubmitted:
            return None
        return set(self.sink.in_flight_snapshots)

    def _settle(self, outcomes: list[tuple]) -> bool:
        """Count written snapshots, put failed ones back; True when all were written; a checkpoint waiting
        for them commits its offsets. Raises FencedError."""
        written = True
        for snapshot, result, error in outcomes:
            self.sink.settled(snapshot, error is None)
            self._commit_waiting(snapshot.sequence, error is None)
            if error is None and self.live is not None:
                self.live.forget(snapshot.retired)  # their lists are deleted
            if error is not None:
                if isinstance(error, FencedError):
                    raise error
                self._flush_failed(error)
                written = False
                continue
            if self.redis_backoff.reset():
                log_event(logger, logging.INFO, "redis_reconnected", published=result.items)
            self.metrics.flushes.inc()
            self.metrics.items_published.inc(result.items)
            self.metrics.flush_seconds.set(result.seconds)
            self.last_flush_seconds = result.seconds
            self.metrics.observe_freshness(result.freshness)
        return written

    def _flush_failed(self, error: Exception) -> None:
        self.metrics.flush_errors.inc()
        self.redis_backoff.failed(error, sleep=False, dirty=len(self.sink.dirty))

    def _refresh_neighbours(self, only: list[str] | None = None) -> None:
        """Compute due neighbour lists for up to ``neighbours_budget`` seconds (``only``: these); the next
        snapshot, taken at once, writes them (no Redis call on the loop)."""
        if not self.redis_backoff.ready() or (only is not None and not only):
            return
        if self.sink.lists_waiting >= self.settings.neighbours_batch:  # Redis slow or hung: bounded
            return
        settings = self.settings
        try:
            ages = self.sink.refresh_neighbours(self.engine, settings.neighbours_batch, settings.neighbours_budget,
                                                settings.publish_max_age, only)
        except (RedisError, OSError) as error:
            self.redis_backoff.failed(error, sleep=False)
            return
        self.metrics.observe_neighbours(ages)
        if self.sink.lists_waiting:
            self.publish(room=1)  # the lists ride with the next snapshot: now
        self.metrics.lists_due.set(len(self.sink.neighbours_due))

    def checkpoint_now(self, force: bool = False) -> bool:
        """Flush → save → commit; failures are logged (and retried at the next checkpoint), never fatal. The
        state is written in the background (the loop learns on) and :meth:`settle_checkpoint` commits."""
        try:
            committed = self.checkpoint.commit(self.engine, force=force)
        except (KafkaError, CheckpointError, OSError) as error:
            log_event(logger, logging.ERROR, "checkpoint_failed", error=repr(error))
            self.checkpoint_error = error
            return False
        self.checkpoint_error = None
        self.metrics.checkpoints.inc()
        if committed:
            self.metrics.commits.inc()
        return committed

    def settle_checkpoint(self) -> None:
        """A background checkpoint write that is durable: link it, commit its offsets."""
        try:
            committed = self.checkpoint.settle()
        except (KafkaError, CheckpointError, OSError) as error:
            log_event(logger, logging.ERROR, "checkpoint_failed", error=repr(error))
            return
        if committed:
            self.metrics.commits.inc()

    def _commit_waiting(self, sequence: int, written: bool) -> None:
        """The commit of a checkpoint that waited for this snapshot, when it was the last one it needed."""
        try:
            if self.checkpoint.settled(sequence, written):
                self.metrics.commits.inc()
        except KafkaError as error:
            log_event(logger, logging.ERROR, "checkpoint_failed", error=repr(error))

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


def _give_up(seconds: float) -> None:
    log_event(logger, logging.ERROR, "shutdown_timeout", seconds=seconds, note="exiting without a clean stop")
    logging.shutdown()
    os._exit(3)
