"""The Kafka side: a consumer-group source (manual commits, rebalance callbacks) and a producer factory.

The consumer is created by :meth:`KafkaSource.open`, not in ``__init__``. Each partition starts at
``max(committed offset, offset in the checkpoint)`` (committed offsets are read when opening, because
kafka-python 3 runs rebalance callbacks on its IO thread, where blocking consumer calls are refused);
records below what the model has learned are dropped, so nothing is learned twice and nothing skipped.

A partition whose log is not the one the model read — its topic id (KIP-516) changed, or the model's
offset lies beyond the partition's end (the topic was recreated, for example by a broker that lost its
topics) — is read again from its beginning and logged as ``partition_reread`` (issue 16, item 2):
a stale offset never means "skip".
"""

from __future__ import annotations

import logging
from typing import Callable

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError

from streamer.logs import log_event

__all__ = ["KafkaSource", "Offsets", "committed_total", "consumer_options", "kafka_security_options", "lag_behind",
           "make_producer"]

logger = logging.getLogger("streamer.kafka")
Offsets = dict[tuple[str, int], int]  # (topic, partition) -> next offset to read


def committed_total(consumer: KafkaConsumer, topic: str) -> int:
    """Sum of the consumer's group's committed offsets on ``topic`` — read without joining the group
    (``consumer`` must not subscribe). Equals the events produced once the group has caught up."""
    partitions = consumer.partitions_for_topic(topic) or set()
    return sum(consumer.committed(TopicPartition(topic, partition)) or 0 for partition in partitions)


def kafka_security_options(settings) -> dict:
    """kafka-python keyword arguments for SASL/SSL (empty settings are left out)."""
    options = {"security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        options.update(sasl_mechanism=settings.sasl_mechanism, sasl_plain_username=settings.sasl_username,
                       sasl_plain_password=settings.sasl_password)
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
        if getattr(settings, name):
            options[name] = getattr(settings, name)
    return options


def consumer_options(settings) -> dict:
    """The daemon's KafkaConsumer keyword arguments (the benchmark's raw baseline uses the same)."""
    options = dict(
        bootstrap_servers=settings.bootstrap_servers, group_id=settings.group, client_id=settings.client_id,
        enable_auto_commit=False, auto_offset_reset=settings.auto_offset_reset,
        session_timeout_ms=settings.session_timeout_ms, heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_records=settings.max_poll_records, fetch_max_wait_ms=100,
        max_partition_fetch_bytes=max(1 << 20, settings.max_message_bytes + 1024),
        **kafka_security_options(settings))
    if settings.group_instance_id:
        options["group_instance_id"] = settings.group_instance_id
    return options


def make_producer(settings) -> KafkaProducer:
    """The dead-letter producer: acks from all replicas, small linger, the same security options."""
    return KafkaProducer(bootstrap_servers=settings.bootstrap_servers, client_id=f"{settings.client_id}-dlq",
                         acks="all", linger_ms=20, **kafka_security_options(settings))


class _Listener(ConsumerRebalanceListener):
    def __init__(self, source: "KafkaSource"):
        self._source = source

    def on_partitions_revoked(self, revoked):
        self._source.handle_revoked(revoked)

    def on_partitions_assigned(self, assigned):
        self._source.handle_assigned(assigned)


class KafkaSource:
    """Consumes ``settings.topics`` in ``settings.group``; ``learned`` holds the model's next offsets."""

    def __init__(self, settings, on_revoked: Callable[[list[TopicPartition]], None],
                 on_assigned: Callable[[list[TopicPartition]], None] | None = None):
        self._settings = settings
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._consumer: KafkaConsumer | None = None
        self.learned: Offsets = {}
        self.follow_committed = True  # False after --reset-model: ``learned`` alone says where to start
        self.topic_ids: dict[str, str] = {}  # topic -> the id (KIP-516) the ``learned`` offsets belong to
        self.rereads: list[tuple[tuple[str, int], int]] = []  # (partition, start) reread since last taken
        self.reread_count = 0  # rereads so far; ``reread_at``: partition -> the number of its last one
        self.reread_at: dict[tuple[str, int], int] = {}
        self.assigned: set[TopicPartition] = set()
        self._in_callback = False

    def open(self) -> None:
        settings = self._settings
        self._consumer = KafkaConsumer(**consumer_options(settings))
        self._fold_committed()
        self._consumer.subscribe(settings.topics, listener=_Listener(self))
        log_event(logger, logging.INFO, "subscribed", topics=",".join(settings.topics), group=settings.group)

    @property
    def is_open(self) -> bool:
        return self._consumer is not None

    @property
    def reread_mark(self) -> int:
        """Changes whenever a partition is read again from its beginning (offsets taken before are stale)."""
        return self.reread_count

    def handle_revoked(self, revoked) -> None:
        """Runs on kafka-python's IO thread while ``poll`` waits: commits there must not block."""
        log_event(logger, logging.INFO, "partitions_revoked", partitions=_names(revoked))
        self._in_callback = True
        try:
            self._on_revoked(list(revoked))
        finally:
            self._in_callback = False
            self.assigned.difference_update(revoked)

    def handle_assigned(self, assigned) -> None:
        """Position each partition at what the model has learned (``seek`` does no I/O)."""
        for partition in assigned:
            target = self.learned.get((partition.topic, partition.partition))
            if target is not None:
                self._consumer.seek(partition, target)
            log_event(logger, logging.INFO, "partition_assigned", topic=partition.topic,
                      partition=partition.partition,
                      start=target if target is not None else f"committed or {self._settings.auto_offset_reset}")
        self.assigned.update(assigned)
        if self._on_assigned is not None:
            self._on_assigned(list(assigned))

    def _fold_committed(self) -> None:
        """``learned = max(checkpoint offset, committed offset)`` for every partition of our topics."""
        if not self.follow_committed:
            return
        for topic in self._settings.topics:
            for number in sorted(self._consumer.partitions_for_topic(topic) or ()):
                partition = TopicPartition(topic, number)
                committed = self._consumer.committed(partition)
                learned = self.learned.get((topic, number))
                if committed is None:
                    continue
                if learned is not None and committed > learned:
                    log_event(logger, logging.WARNING, "checkpoint_behind_commit", topic=topic, partition=number,
                              checkpoint=learned, committed=committed)
                if learned is None or committed > learned:
                    self.learned[(topic, number)] = committed

    def poll(self, timeout_ms: int) -> list[tuple[TopicPartition, list]]:
        """Batches of new records per partition, in poll order; already-learned records are dropped."""
        batches = []
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        reread = self._reread_stale()
        for partition, records in polled.items():
            if partition in reread:
                continue  # fetched from the stale position: read again from the beginning
            start = self.learned.get((partition.topic, partition.partition))
            if start is not None and records and records[0].offset < start:  # offsets ascend in a batch
                records = [record for record in records if record.offset >= start]
            if records:
                batches.append((partition, records))
        return batches

    def _reread_stale(self) -> set[TopicPartition]:
        """Assigned partitions whose log is not the one the model read, positioned at their beginning."""
        cluster = self._consumer._client.cluster  # kafka-python keeps the metadata's topic ids there
        assignment = self._consumer.assignment()
        stale: dict[TopicPartition, str] = {}
        for partition in self.assigned & assignment:
            current = cluster.topic_id(partition.topic)
            known = self.topic_ids.get(partition.topic)
            if current is not None and known is None:
                self.topic_ids[partition.topic] = str(current)
            elif current is not None and str(current) != known:
                stale[partition] = f"topic id changed from {known} to {current}"
                continue
            mark = self._consumer.highwater(partition)
            learned = self.learned.get((partition.topic, partition.partition))
            if mark is not None and learned is not None and learned > mark:
                stale[partition] = f"learned offset {learned} is beyond the partition's end {mark}"
        if stale:
            self._reposition(stale, cluster)
        return set(stale)

    def _reposition(self, stale: dict[TopicPartition, str], cluster) -> None:
        beginnings = self._consumer.beginning_offsets(list(stale))  # blocking: poll runs on the consumer's thread
        self.reread_count += 1
        for partition, reason in stale.items():
            key, start = (partition.topic, partition.partition), beginnings[partition]
            log_event(logger, logging.ERROR, "partition_reread", topic=partition.topic, partition=partition.partition,
                      learned=self.learned.get(key), start=start, reason=reason,
                      note="the topic was recreated or truncated: its events are learned from its beginning")
            self._consumer.seek(partition, start)
            self.learned[key] = start
            current = cluster.topic_id(partition.topic)
            if current is not None:
                self.topic_ids[partition.topic] = str(current)
            self.rereads.append((key, start))
            self.reread_at[key] = self.reread_count

    def has_waiting(self) -> bool:
        """Unknown in process: the loop's rule (a full poll, the lag) decides what is a backlog."""
        return False

    def mark_learned(self, partition: TopicPartition, next_offset: int) -> None:
        self.learned[(partition.topic, partition.partition)] = next_offset

    def commit(self, offsets: Offsets) -> bool:
        """Commit the offsets of currently assigned partitions; False (logged) when the group is rebalancing."""
        chosen = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                  for (topic, partition), offset in offsets.items()
                  if TopicPartition(topic, partition) in self.assigned}
        if not chosen or self._consumer is None:
            return bool(chosen)
        if self._in_callback:  # on the IO thread a blocking commit would deadlock: send it, log the outcome
            self._consumer.commit_async(chosen, callback=_log_async_commit)
            return True
        try:
            self._consumer.commit(chosen)
        except CommitFailedError as error:
            log_event(logger, logging.WARNING, "commit_failed_rebalance", error=str(error))
            return False
        except KafkaError as error:
            log_event(logger, logging.WARNING, "commit_failed", error=repr(error))
            return False
        return True

    def highwaters(self) -> Offsets:
        """The broker's high watermark of each assigned partition, as last seen by a fetch."""
        if self._consumer is None:
            return {}
        marks = ((partition, self._consumer.highwater(partition)) for partition in self.assigned)
        return {(partition.topic, partition.partition): mark for partition, mark in marks if mark is not None}

    def lag(self) -> int | None:
        """Messages between what the model learned and the high watermark of the assigned partitions."""
        return lag_behind(self.highwaters(), self.learned) if self._consumer is not None else None

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            finally:
                self._consumer = None
                self.assigned.clear()


def lag_behind(highwaters: Offsets, learned: Offsets) -> int | None:
    """Sum over partitions of ``highwater - learned``; None when no partition has both."""
    gaps = [max(0, mark - learned[key]) for key, mark in highwaters.items() if key in learned]
    return sum(gaps) if gaps else None


def _log_async_commit(offsets, response) -> None:
    if isinstance(response, Exception):
        log_event(logger, logging.WARNING, "commit_failed_rebalance", error=repr(response),
                  partitions=_names(offsets))


def _names(partitions) -> str:
    return ",".join(f"{partition.topic}/{partition.partition}" for partition in partitions) or "-"
