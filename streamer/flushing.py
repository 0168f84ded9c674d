"""Flushing and checkpointing from the loop: snapshots for the publisher thread, neighbour lists, checkpoints.

The loop never waits on Redis: at most ``publisher.depth`` snapshots are in flight, neighbour lists ride with
them, and a checkpoint commits its offsets only once the snapshots it needs are written (a stop's checkpoint
waits for them, for at most ``redis_timeout``). Redis errors never stop training: a failed snapshot's ids go
back to dirty and land after reconnect (with backoff). A mixin of :class:`streamer.loop.ActiveLoop`.
"""

from __future__ import annotations

import logging

from kafka.errors import KafkaError
from redis.exceptions import RedisError

from streamer.errors import CheckpointError
from streamer.io.redis_sink import FencedError
from streamer.logs import log_event

__all__ = ["Flushing"]

logger = logging.getLogger("streamer.daemon")


class Flushing:
    """Publish, settle, refresh lists, checkpoint and commit (needs the loop's ``engine``, ``sink``, ``publisher``,
    ``checkpoint``, ``settings``, ``metrics``, ``live`` and backoffs)."""

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

    def _pending_for_checkpoint(self) -> dict[str, list[str]]:
        """The sink's pending ids, and the items a publish threshold holds back: a daemon restarted from this
        checkpoint (after a kill -9) publishes them at its first flush, as an idle or stopping one would have."""
        pending = self.sink.pending_snapshot()
        held = self.engine.held_back() if self.ingestor.holding else []
        if held:
            pending["items"] = sorted(set(pending["items"]).union(held))
        return pending

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
