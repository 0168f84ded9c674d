"""A stop or a rebalance while Redis hangs (redis-server stopped with SIGSTOP) is bounded and lossless (issue 16): the stop's
checkpoint waits for the snapshots in flight at most ``redis_timeout``, saves every learned event with the ids
not yet in Redis, and leaves the offsets uncommitted; the lease release waits at most ``redis_timeout`` too.
Before, the stop waited for every hung snapshot (two socket timeouts each) and for the lease release.
The next daemon, once Redis answers again, learns nothing twice and publishes every item."""

from __future__ import annotations

import signal
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from streamer import Trainer
from streamer.io.checkpoint import CheckpointStore
from streamer.io.kafka_source import committed_total
from tests.integration.daemon_support import (
    FAST_GROUP, DaemonThread, OwnRedis, event_value, manifest_offsets, produce, read_item_vectors, read_manifest,
    settings_for, wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STOP_BOUND = 9.0  # seconds: drain (redis_timeout 2 s) + state save + lease release (2 s) + leaving the group
REVOKE_BOUND = 6.0  # seconds the daemon spends on a revocation: the wait for Redis (2 s) + the state save


def _events(count: int, now: float) -> list[tuple[bytes, bytes]]:
    return [(f"u{index % 30}".encode(), event_value(f"u{index % 30}", f"i{(index * 7) % 300}", now - 600 + index * 0.05))
            for index in range(count)]


def test_a_stop_while_redis_hangs_is_bounded_and_loses_nothing(kafka_bootstrap, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    messages, state = _events(3000, time.time()), tmp_path / "state"
    checker = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"{unique_name}-group", enable_auto_commit=False)
    with OwnRedis(tmp_path / "redis.log") as server:
        client = server.client()
        settings = settings_for(kafka_bootstrap, server.url, unique_name, topic, state, vector_size=8)
        running = DaemonThread(settings).__enter__()
        try:
            produce(kafka_bootstrap, topic, messages[:2000])
            wait_for(lambda: committed_total(checker, topic) == 2000, 90, "2,000 events committed")
            server.process.send_signal(signal.SIGSTOP)
            produce(kafka_bootstrap, topic, messages[2000:])
            active = running.daemon.active
            wait_for(lambda: active.engine.event_count == 3000 and active.sink.in_flight, 60,
                     "the last events learned, a snapshot hung in flight")
            began = time.monotonic()
            running.stop(timeout=60)
            stop_seconds = time.monotonic() - began
            committed_at_stop = committed_total(checker, topic)
        finally:
            server.process.send_signal(signal.SIGCONT)
            running.__exit__(None, None, None)
        print(f"stop while Redis hung: {stop_seconds:.1f} s")
        assert running.exit_code == 0 and running.error is None
        assert stop_seconds < STOP_BOUND, f"the stop took {stop_seconds:.1f} s while Redis hung"
        manifest = read_manifest(state)
        assert manifest_offsets(state)[(topic, 0)] == 3000 and manifest["event_count"] == 3000
        assert CheckpointStore(state).load(Trainer.load)[1].pending["items"]  # what Redis may not have is kept
        assert committed_at_stop == 2000  # offsets wait for Redis
        with DaemonThread(settings) as again:
            wait_for(lambda: again.daemon.active and not again.daemon.active.sink.pending
                     and again.daemon.active.engine.event_count == 3000, 90, "the pending ids published")
            ids, _ = again.daemon.active.engine.vectors()
            assert set(read_item_vectors(client, unique_name)) == set(ids)
            wait_for(lambda: committed_total(checker, topic) == 3000, 60, "every offset committed")
            assert again.daemon.active.engine.event_count == 3000  # nothing learned twice
        client.close()
    checker.close()


def _time_revocations(source) -> list[float]:
    """The seconds each revocation keeps the daemon's loop (its checkpoint), measured around the real handler."""
    durations, handler = [], source._on_revoked

    def timed(partitions):
        began = time.monotonic()
        try:
            handler(partitions)
        finally:
            durations.append(time.monotonic() - began)

    source._on_revoked = timed
    return durations


def test_a_rebalance_while_redis_hangs_is_bounded_and_learns_nothing_twice(
        kafka_bootstrap, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=2)
    make_topic(partitions=1, name=f"{topic}-catalog")
    messages = _events(3000, time.time())
    with OwnRedis(tmp_path / "redis.log") as server:
        settings = settings_for(kafka_bootstrap, server.url, unique_name, topic, tmp_path / "state", vector_size=8)
        with DaemonThread(settings) as running:
            produce(kafka_bootstrap, topic, messages[:2000])
            wait_for(lambda: running.daemon.active and running.daemon.active.engine.event_count == 2000, 90,
                     "2,000 events learned")
            active = running.daemon.active
            revocations = _time_revocations(active.source)
            server.process.send_signal(signal.SIGSTOP)
            try:
                produce(kafka_bootstrap, topic, messages[2000:])
                wait_for(lambda: active.engine.event_count == 3000 and active.sink.in_flight, 60,
                         "the last events learned, a snapshot hung in flight")
                newcomer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=settings.group,
                                         enable_auto_commit=False, **FAST_GROUP)
                newcomer.subscribe([topic])
                try:
                    wait_for(lambda: newcomer.poll(timeout_ms=200) is not None and newcomer.assignment(), 90,
                             "the newcomer's partition")
                    wait_for(lambda: revocations, 90, "the daemon's revocation handled")
                finally:
                    newcomer.close(autocommit=False)
            finally:
                server.process.send_signal(signal.SIGCONT)
            print(f"rebalance while Redis hung: the daemon's revocation took {max(revocations):.1f} s")
            assert max(revocations) < REVOKE_BOUND, f"a revocation took {max(revocations):.1f} s while Redis hung"
            wait_for(lambda: len(active.source.assigned & {TopicPartition(topic, 0), TopicPartition(topic, 1)}) == 2,
                     60, "both partitions back")
            wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0), 0)
                     + manifest_offsets(tmp_path / "state").get((topic, 1), 0) == 3000, 60, "every event checkpointed")
            time.sleep(2.0)  # records read again after the partition came back must not be learned again
            assert active.engine.event_count == 3000, "an event was learned twice"
            assert running.alive
