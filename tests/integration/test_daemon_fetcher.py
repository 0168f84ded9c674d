"""Rebalances (with either fetcher) and a dead fetch process lose and repeat nothing.

A second member joining the daemon's group takes one partition: the daemon must checkpoint and commit
before it lets go, so the newcomer starts exactly where the daemon stopped. When the newcomer leaves,
the daemon takes the partition back and learns the rest — every event exactly once.
"""

from __future__ import annotations

import os
import signal

import pytest
from kafka import KafkaConsumer, TopicPartition

from streamer.datasets import load_events
from tests.integration.daemon_support import (
    FAST_GROUP, DaemonThread, event_value, manifest_offsets, produce, settings_for, wait_for,
)

pytestmark = pytest.mark.integration
KNOBS = {"seed": 5, "workers": 1, "vector_size": 16}


def _messages(rows):
    return ((user.encode(), event_value(user, item, ts)) for user, item, ts in rows)


def _committed(bootstrap: str, group: str, partition: TopicPartition) -> int | None:
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return reader.committed(partition)
    finally:
        reader.close()


@pytest.mark.parametrize("fetcher", ["process", "inline"])
def test_a_rebalance_commits_what_was_learned_before_the_partition_moves(
        kafka_bootstrap, redis_url, make_topic, unique_name, tmp_path, data_root, fetcher):
    rows = load_events("diginetica")[:6000]
    first, middle, second = rows[:2000], rows[2000:4000], rows[4000:]
    topic = make_topic(partitions=2)
    make_topic(partitions=1, name=f"{topic}-catalog")
    state = tmp_path / "state"
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, state, checkpoint_interval=60.0,
                            fetcher=fetcher, **KNOBS)
    produce(kafka_bootstrap, topic, _messages(first))
    with DaemonThread(settings) as running:
        wait_for(lambda: running.daemon.active and running.daemon.active.engine.event_count == len(first), 60,
                 "the first part learned")
        active = running.daemon.active
        partitions = [TopicPartition(topic, number) for number in (0, 1)]
        committed_before = {partition: _committed(kafka_bootstrap, settings.group, partition) or 0
                            for partition in partitions}
        produce(kafka_bootstrap, topic, _messages(middle))  # learned, not committed: the interval is 60 s
        wait_for(lambda: active.engine.event_count == len(first) + len(middle), 60, "the middle part learned")
        checkpoints_before = active.metrics.checkpoints._value.get()
        newcomer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=settings.group,
                                 enable_auto_commit=False, **FAST_GROUP)
        newcomer.subscribe([topic])
        taken: dict[TopicPartition, list] = {}

        def newcomer_has_records() -> bool:
            for partition, records in newcomer.poll(timeout_ms=200).items():
                taken.setdefault(partition, []).extend(records)
            return bool(taken)

        try:
            wait_for(lambda: newcomer_has_records() or newcomer.assignment(), 60, "the newcomer's assignment")
            (moved,) = newcomer.assignment()
            # The daemon checkpointed and committed what it had learned at the revocation ...
            assert active.metrics.checkpoints._value.get() > checkpoints_before
            learned = manifest_offsets(state)[(moved.topic, moved.partition)]
            assert learned > committed_before[moved]
            assert _committed(kafka_bootstrap, settings.group, moved) == learned
            assert moved not in active.source.assigned
            produce(kafka_bootstrap, topic, _messages(second))
            wait_for(newcomer_has_records, 60, "the newcomer's share of the second half")
            # ... and the newcomer starts exactly there: nothing skipped, nothing learned twice.
            assert taken[moved][0].offset == learned
        finally:
            newcomer.close(autocommit=False)  # leaves the group without committing what it read
        wait_for(lambda: active.engine.event_count >= len(rows), 90, "the partition back and every event learned")
        assert active.engine.event_count == len(rows), "an event was learned twice"


def test_a_killed_fetcher_is_started_again_and_nothing_is_lost(
        kafka_bootstrap, redis_url, make_topic, unique_name, tmp_path, data_root):
    rows = load_events("diginetica")[:8000]
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state",
                            max_poll_records=200, **KNOBS)
    produce(kafka_bootstrap, topic, _messages(rows[:2000]))
    with DaemonThread(settings) as running:
        wait_for(lambda: running.daemon.active and running.daemon.active.engine.event_count == 2000, 60,
                 "the first events learned")
        source = running.daemon.active.source
        assert settings.fetcher == "process"  # the default
        killed = source.fetcher_pid
        os.kill(killed, signal.SIGKILL)
        produce(kafka_bootstrap, topic, _messages(rows[2000:]))
        engine = running.daemon.active.engine
        wait_for(lambda: engine.event_count == len(rows), 120, "every event after the fetcher restart")
        assert source.fetcher_pid not in (None, killed)
        assert running.alive
        assert engine.event_count == len(rows)
