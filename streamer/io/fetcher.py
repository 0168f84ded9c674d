"""The fetch process: a child that owns the Kafka consumer and hands record batches to the daemon.

kafka-python unpacks every record in Python; on the daemon's loop that cost (about half of the loop's
time) serialises with learning. Run in a child process (``--fetcher process``) it overlaps with
learning on another core. The child only fetches: it never commits on its own and never skips ahead.

Protocol (pickled tuples over two one-way pipes; the child's main and IO threads queue their messages
for one sender thread, so the daemon sees them in the order they happened and fetching goes on while
the daemon reads):

child → daemon                                   daemon → child
("opened", learned offsets)                      ("commit", token, offsets, rereads seen)
("open_failed", error text)                      ("revoke_done", offsets | None, rereads seen)
("records", [packed batch], highwaters)          ("close",)
("status", highwaters)
("topic_ids", {topic: id})
("reread", number, [(partition, start)], ids)   partitions read again from their beginning (the topic was
                                    recreated); offsets the daemon names before it has seen reread
                                    ``number`` are ignored for those partitions
("assigned", [(topic, partition)])
("revoked", [(topic, partition)])   the child's rebalance callback then waits for "revoke_done":
                                    the daemon flushes, checkpoints and names the offsets to commit
("committed", token, ok)
("error", error text)

A packed batch is ``(topic, partition, offsets, keys, values, timestamps)`` — columns pickle far
faster than record objects. The child ignores SIGINT/SIGTERM (the daemon stops it with "close") and
exits when the daemon's end of a pipe closes, so a killed daemon leaves no fetcher behind.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time

from kafka.errors import KafkaError

from streamer.io.backoff import Backoff
from streamer.io.kafka_source import KafkaSource, Offsets
from streamer.logs import configure_logging, log_event

__all__ = ["pack_batch", "run_fetcher"]

logger = logging.getLogger("streamer.fetcher")
STATUS_INTERVAL = 1.0  # seconds between highwater reports while no records arrive
POLL_TIMEOUT_MS = 100
OUTBOX_MESSAGES = 16  # fetched batches waiting for the daemon (bounded: the broker keeps the backlog)


def pack_batch(partition, records) -> tuple:
    """One partition's records as columns: ``(topic, partition, offsets, keys, values, timestamps)``."""
    return (partition.topic, partition.partition, [record.offset for record in records],
            [record.key for record in records], [record.value for record in records],
            [record.timestamp for record in records])


def run_fetcher(settings, learned: Offsets, records_out, commands_in, follow_committed: bool = True,
                topic_ids: dict | None = None) -> None:
    """The child process's entry point (spawned by :class:`streamer.io.process_source.ProcessSource`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(settings.log_level)
    fetcher = _Fetcher(settings, learned, records_out, commands_in, follow_committed)
    fetcher.source.topic_ids = dict(topic_ids or {})
    fetcher.run()


class _Fetcher:
    def __init__(self, settings, learned: Offsets, records_out, commands_in, follow_committed: bool = True):
        self._out, self._in = records_out, commands_in
        self._outbox: queue.Queue = queue.Queue(OUTBOX_MESSAGES)
        self._commits: queue.Queue = queue.Queue()
        self._revoke_replies: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self.source = KafkaSource(settings, on_revoked=self._revoked, on_assigned=self._assigned)
        self.source.learned = dict(learned)
        self.source.follow_committed = follow_committed
        self._sent_ids: dict[str, str] = {}

    def send(self, message: tuple) -> None:
        """Queue a message for the sender thread (blocks while ``OUTBOX_MESSAGES`` wait: backpressure)."""
        while not self._stopping.is_set():
            try:
                self._outbox.put(message, timeout=0.5)
                return
            except queue.Full:
                continue

    def _send_queued(self) -> None:
        """The sender thread: writes queued messages in order, so fetching goes on while the daemon reads."""
        try:
            while True:
                message = self._outbox.get()
                if message is None:
                    return
                self._out.send(message)
        except OSError:  # the daemon is gone (BrokenPipeError)
            self._stopping.set()

    def run(self) -> None:
        for target, name in ((self._read_commands, "fetcher-commands"), (self._send_queued, "fetcher-sender")):
            threading.Thread(target=target, name=name, daemon=True).start()
        try:
            if self._open():
                self._fetch_until_closed()
        finally:
            try:
                self.source.close()
            except KafkaError as error:
                log_event(logger, logging.WARNING, "fetcher_close_failed", error=repr(error))

    def _open(self) -> bool:
        backoff = Backoff("kafka_unavailable")
        while not self._stopping.is_set():
            try:
                self.source.open()
            except KafkaError as error:
                self.send(("open_failed", repr(error)))
                backoff.failed(error)
                continue
            self.send(("opened", dict(self.source.learned)))
            return True
        return False

    def _fetch_until_closed(self) -> None:
        next_status = 0.0
        while not self._stopping.is_set():
            self._run_commits()
            try:
                batches = self.source.poll(POLL_TIMEOUT_MS)
            except KafkaError as error:
                self.send(("error", repr(error)))
                time.sleep(0.5)
                continue
            self._report_rereads()
            now = time.monotonic()
            if batches:
                self.send(("records", [pack_batch(partition, records) for partition, records in batches],
                           self.source.highwaters()))
                next_status = now + STATUS_INTERVAL
            elif now >= next_status:
                self.send(("status", self.source.highwaters()))
                next_status = now + STATUS_INTERVAL

    def _report_rereads(self) -> None:
        """Tell the daemon which partitions start again (before their records) and the topic ids seen."""
        source = self.source
        if source.rereads:
            self.send(("reread", source.reread_count, list(source.rereads), dict(source.topic_ids)))
            source.rereads.clear()
            self._sent_ids = dict(source.topic_ids)
        elif source.topic_ids != self._sent_ids:
            self._sent_ids = dict(source.topic_ids)
            self.send(("topic_ids", dict(self._sent_ids)))

    def _current(self, offsets: Offsets | None, seen: int) -> Offsets | None:
        """``offsets`` without the partitions reread since the daemon named them (stale offsets)."""
        if not offsets:
            return offsets
        reread_at = self.source.reread_at
        return {key: offset for key, offset in offsets.items() if reread_at.get(key, 0) <= seen}

    def _run_commits(self) -> None:
        """Commits asked for by the daemon, on this (the consumer's) thread."""
        while True:
            try:
                token, offsets, seen = self._commits.get_nowait()
            except queue.Empty:
                return
            offsets = self._current(offsets, seen)
            self._advance(offsets)
            self.send(("committed", token, self.source.commit(offsets)))

    def _advance(self, offsets: Offsets) -> None:
        """What the daemon has learned: where a partition assigned again is positioned."""
        learned = self.source.learned
        for key, offset in offsets.items():
            learned[key] = max(offset, learned.get(key, offset))

    def _read_commands(self) -> None:
        """Reads the daemon's commands on its own thread, so a waiting rebalance callback gets its answer."""
        try:
            while True:
                command = self._in.recv()
                if command[0] == "commit":
                    self._commits.put(command[1:])
                elif command[0] == "revoke_done":
                    self._revoke_replies.put(self._current(command[1], command[2]))
                elif command[0] == "close":
                    break
        except (EOFError, OSError):
            log_event(logger, logging.WARNING, "fetcher_orphaned", note="the daemon is gone; leaving the group")
        self._stopping.set()
        self._revoke_replies.put(None)

    def _assigned(self, partitions) -> None:
        self.send(("assigned", [(partition.topic, partition.partition) for partition in partitions]))

    def _revoked(self, partitions) -> None:
        """kafka-python's IO thread: the daemon checkpoints what it learned; commit that, then release."""
        if not partitions or self._stopping.is_set():
            return
        self.send(("revoked", [(partition.topic, partition.partition) for partition in partitions]))
        offsets = self._revoke_replies.get()
        if offsets:
            self._advance(offsets)
            self.source.commit(offsets)  # in the callback: sent asynchronously, the outcome is logged
