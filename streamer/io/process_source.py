"""The daemon's end of the fetch process (:mod:`streamer.io.fetcher`), a drop-in for :class:`KafkaSource`.

Same interface — ``open``, ``poll``, ``mark_learned``, ``commit``, ``lag``, ``close``, ``learned``,
``assigned`` — so the loop does not know where records are unpacked. The guarantees are unchanged:
offsets are committed only when the daemon asks (after its checkpoint); on revocation the child's
rebalance callback waits until the daemon has checkpointed and names the offsets to commit; records
of a partition that is no longer assigned are dropped unlearned (a later owner reads them again);
records below what the model has learned are dropped, so nothing is learned twice. A fetcher that
dies is started again from what the model has learned.
"""

from __future__ import annotations

import bisect
import collections
import logging
import multiprocessing
import time
from typing import Callable

from kafka import TopicPartition
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from streamer.io.backoff import Backoff
from streamer.io.fetched import FetchedRecord, RecordBatch, widen_pipe
from streamer.io.fetcher import run_fetcher
from streamer.io.kafka_source import Offsets, lag_behind
from streamer.logs import log_event

__all__ = ["FetchedRecord", "ProcessSource", "RecordBatch"]

logger = logging.getLogger("streamer.kafka")
OPEN_WAIT = 5.0  # seconds ``open`` waits for the child before the caller's backoff takes over
COMMIT_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0


class ProcessSource:
    """Consumes ``settings.topics`` in ``settings.group`` through a child process."""

    def __init__(self, settings, on_revoked: Callable[[list[TopicPartition]], None]):
        self._settings = settings
        self._on_revoked = on_revoked
        self.learned: Offsets = {}
        self.follow_committed = True  # False after --reset-model: ``learned`` alone says where to start
        self.topic_ids: dict[str, str] = {}  # topic -> the id (KIP-516) the ``learned`` offsets belong to
        self._rereads_seen = 0  # the fetcher's last "reread" applied to ``learned``
        self.reread_mark = 0  # "reread"s applied so far, over every fetcher (offsets taken before are stale)
        self.assigned: set[TopicPartition] = set()
        self._highwaters: Offsets = {}
        self._inbox: collections.deque = collections.deque()
        self._process = self._in = self._out = None
        self._opened = False
        self._pending_revoke: list | None = None
        self._revoking, self._revoke_offsets = False, None
        self._token = 0
        self._restarts = Backoff("fetcher_restart")

    # --- life cycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Start the fetch process (once) and wait for it to join the group; KafkaError while it cannot."""
        if self._process is None:
            self._start()
        deadline = time.monotonic() + OPEN_WAIT
        while not self._opened:
            message = self._next(max(0.0, deadline - time.monotonic()))
            if message is None:
                raise KafkaTimeoutError("the fetch process has not reached the brokers yet")
            if message[0] == "open_failed":
                raise KafkaConnectionError(message[1])
            self._handle(message, [])

    @property
    def is_open(self) -> bool:
        return self._process is not None

    @property
    def fetcher_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            self._out.send(("close",))
        except OSError:
            pass
        process.join(CLOSE_TIMEOUT)
        if process.is_alive():
            log_event(logger, logging.WARNING, "fetcher_kill", note=f"did not stop within {CLOSE_TIMEOUT} s")
            process.kill()
            process.join()
        self._in.close()
        self._out.close()
        self._opened = False
        self.assigned.clear()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._in, child_out = context.Pipe(duplex=False)
        child_in, self._out = context.Pipe(duplex=False)
        self._process = context.Process(target=run_fetcher, name="streamer-fetcher", daemon=True,
                                        args=(self._settings, dict(self.learned), child_out, child_in,
                                              self.follow_committed, dict(self.topic_ids)))
        self._process.start()
        widen_pipe(child_out)
        child_out.close()  # the child's ends: closed here so a dead child reads as end of file
        child_in.close()
        self._opened, self._rereads_seen = False, 0
        log_event(logger, logging.INFO, "fetcher_started", pid=self._process.pid)

    def _restart(self) -> None:
        """The child died: start another from what the model has learned (after a backoff pause)."""
        process = self._process
        process.join(1.0)
        self._restarts.failed(RuntimeError(f"fetch process ended, exit code {process.exitcode}"))
        self._in.close()
        self._out.close()
        self._process, self._opened = None, False
        self.assigned.clear()
        self._inbox.clear()
        self._pending_revoke = None
        self._start()

    # --- records ----------------------------------------------------------------------------------
    def poll(self, timeout_ms: int) -> list[tuple[TopicPartition, list]]:
        """Batches of new records per partition in arrival order (at most about ``max_poll_records``)."""
        batches: list = []
        try:
            if self._pending_revoke is not None:
                keys, self._pending_revoke = self._pending_revoke, None
                self._revoke(keys)
            deadline = time.monotonic() + timeout_ms / 1000.0
            taken, limit = 0, self._settings.max_poll_records
            while taken < limit:
                message = self._next(0.0 if batches else max(0.0, deadline - time.monotonic()))
                if message is None:
                    break
                if message[0] == "revoked" and batches:  # learn what came first, then checkpoint
                    self._pending_revoke = message[1]
                    break
                taken += self._handle(message, batches)
        except (EOFError, OSError) as error:
            log_event(logger, logging.ERROR, "fetcher_died", error=repr(error))
            self._restart()
        return batches

    def _handle(self, message: tuple, batches: list) -> int:
        """Apply one message from the child; returns the number of records added to ``batches``."""
        kind = message[0]
        if kind == "records":
            self._highwaters.update(message[2])
            added = 0
            for packed in message[1]:
                batch = self._unpack(packed)
                if batch is not None:
                    batches.append(batch)
                    added += len(batch[1])
            return added
        if kind == "status":
            self._highwaters.update(message[1])
        elif kind == "assigned":
            self.assigned.update(TopicPartition(topic, number) for topic, number in message[1])
        elif kind == "revoked":
            self._revoke(message[1])
        elif kind == "reread":  # the topic was recreated: these partitions start again (the child logged it)
            for key, start in message[2]:
                self.learned[key] = start
            self._rereads_seen = message[1]
            self.reread_mark += 1
            self.topic_ids.update(message[3])
        elif kind == "topic_ids":
            self.topic_ids.update(message[1])
        elif kind == "revoke_answered":  # answered while a commit was waiting: only the bookkeeping is left
            self._release(message[1])
        elif kind == "opened":
            for key, offset in message[1].items():
                self.learned[key] = max(offset, self.learned.get(key, offset))
            self._opened = True
            self._restarts.reset()
        elif kind == "committed" and not message[2]:
            log_event(logger, logging.WARNING, "commit_failed_late", token=message[1])
        elif kind in ("error", "open_failed"):
            log_event(logger, logging.WARNING, "kafka_error", error=message[1])
        return 0

    def _unpack(self, packed: tuple) -> tuple[TopicPartition, list] | None:
        """Records of an assigned partition from ``learned`` on, or None."""
        topic, number, offsets, keys, values, stamps = packed
        partition = TopicPartition(topic, number)
        if partition not in self.assigned:
            return None  # revoked since it was fetched: its next owner reads it again
        start = self.learned.get((topic, number))
        first = 0 if start is None else bisect.bisect_left(offsets, start)
        if first == len(offsets):
            return None
        if first:
            offsets, keys, values, stamps = offsets[first:], keys[first:], values[first:], stamps[first:]
        return partition, RecordBatch(topic, number, offsets, keys, values, stamps)

    def has_waiting(self) -> bool:
        """Fetched messages wait for the loop (a backlog: not the time for spare work)."""
        try:
            return bool(self._inbox) or (self._in is not None and self._in.poll(0))
        except OSError:
            return False

    def mark_learned(self, partition: TopicPartition, next_offset: int) -> None:
        self.learned[(partition.topic, partition.partition)] = next_offset

    def lag(self) -> int | None:
        marks = {(partition.topic, partition.partition) for partition in self.assigned}
        return lag_behind({key: mark for key, mark in self._highwaters.items() if key in marks}, self.learned)

    # --- commits and rebalances -------------------------------------------------------------------
    def commit(self, offsets: Offsets) -> bool:
        """Ask the child to commit; False when it could not (rebalancing, timeout, no fetcher)."""
        if self._revoking:  # inside on_revoked: the child commits these before it releases the partitions
            self._revoke_offsets = dict(offsets)
            return True
        if self._process is None or not self._opened:
            return False
        self._token += 1
        try:
            if self._pending_revoke is not None:  # the child waits in its rebalance callback and would not
                keys, self._pending_revoke = self._pending_revoke, None  # commit: release with these offsets
                self._out.send(("revoke_done", dict(offsets), self._rereads_seen))
                self._release(keys)
            self._out.send(("commit", self._token, dict(offsets), self._rereads_seen))
            deadline = time.monotonic() + COMMIT_TIMEOUT
            while True:
                if not self._in.poll(max(0.0, deadline - time.monotonic())):
                    log_event(logger, logging.WARNING, "commit_timeout", seconds=COMMIT_TIMEOUT)
                    return False
                message = self._in.recv()
                if message[0] == "committed" and message[1] == self._token:
                    return message[2]
                if message[0] == "revoked":  # what is being committed is checkpointed: release with it
                    self._out.send(("revoke_done", dict(offsets), self._rereads_seen))
                    message = ("revoke_answered", message[1])
                self._inbox.append(message)
        except (EOFError, OSError) as error:
            log_event(logger, logging.WARNING, "commit_failed", error=repr(error))
            return False

    def _revoke(self, keys: list) -> None:
        """The child is waiting in its rebalance callback: checkpoint (via ``on_revoked``), then answer."""
        partitions = [TopicPartition(topic, number) for topic, number in keys]  # the child logged them
        self._revoking, self._revoke_offsets = True, None
        try:
            self._on_revoked(partitions)
        finally:
            self._revoking = False
            self._out.send(("revoke_done", self._revoke_offsets, self._rereads_seen))
            self._release(keys)

    def _release(self, keys: list) -> None:
        self.assigned.difference_update(TopicPartition(topic, number) for topic, number in keys)

    def _next(self, wait: float):
        """The next message (the inbox first), or None after ``wait`` seconds."""
        if self._inbox:
            return self._inbox.popleft()
        if self._in.poll(wait):
            return self._in.recv()
        return None
