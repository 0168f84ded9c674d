"""The local stack is real: Kafka round trips with group commits, Redis round trips, clean shutdown."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from streamer.localstack import LocalStack
from tests.conftest import CONSUMER_TEST_SETTINGS
from tests.integration.daemon_support import wait_for

pytestmark = pytest.mark.integration


def _consume(bootstrap: str, topic: str, group: str, expected: int, timeout_s: float = 30.0):
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", **CONSUMER_TEST_SETTINGS,
    )
    records = []
    polls = int(timeout_s / 0.5)
    for _ in range(polls):
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
        if len(records) >= expected:
            break
    return consumer, records


def test_message_round_trip_and_group_commit_survives_a_new_consumer(kafka_bootstrap, make_topic):
    topic = make_topic(partitions=1)
    group = f"group-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for index in range(5):
        producer.send(topic, key=b"user", value=f"message-{index}".encode())
    producer.flush()

    first, records = _consume(kafka_bootstrap, topic, group, expected=5)
    assert [record.value for record in records] == [f"message-{i}".encode() for i in range(5)]
    first.commit({TopicPartition(topic, 0): OffsetAndMetadata(3, "", -1)})
    first.close()

    producer.send(topic, key=b"user", value=b"message-5")
    producer.flush()
    producer.close()
    second, resumed = _consume(kafka_bootstrap, topic, group, expected=3)
    try:
        assert second.committed(TopicPartition(topic, 0)) == 3
        assert [record.offset for record in resumed] == [3, 4, 5]
        assert resumed[-1].value == b"message-5"
    finally:
        second.close()


def test_redis_value_round_trip(redis_client, unique_name):
    redis_client.hset(f"{unique_name}:item:a", mapping={"vec": b"\x00\x01\x02\x03", "version": 7})
    stored = redis_client.hgetall(f"{unique_name}:item:a")
    assert stored == {b"vec": b"\x00\x01\x02\x03", b"version": b"7"}


def test_stack_stops_exactly_the_processes_it_started(tmp_path):
    stack = LocalStack(log_dir=tmp_path)
    with stack:
        broker, server = stack.broker.process, stack.redis.process
        assert redis.Redis.from_url(stack.redis_url).ping()
        assert broker.poll() is None and server.poll() is None
    assert broker.poll() is not None and server.poll() is not None


def test_stack_stops_when_the_body_fails(tmp_path):
    stack = LocalStack(log_dir=tmp_path)
    with pytest.raises(RuntimeError):
        with stack:
            processes = (stack.broker.process, stack.redis.process)
            raise RuntimeError("test failure inside the stack")
    assert all(process.poll() is not None for process in processes)


def test_a_stack_without_a_log_dir_removes_its_temporary_folder_and_a_served_path_its_own(
        tmp_path, monkeypatch, kafka_bootstrap, redis_url):
    from streamer.evaluation.kafka_models import ServedPath

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    with LocalStack() as stack:
        assert [path.name[:15] for path in tmp_path.iterdir()] == ["streamer-stack-"]
        assert Path(stack.broker.log_path).parent.parent == tmp_path
    with ServedPath(bootstrap_servers=kafka_bootstrap, redis_url=redis_url) as served:
        assert served.workdir.parent == tmp_path and served.workdir.is_dir()
        wait_for(lambda: "engine_compiled" in served.log_path.read_text(), 60, "the daemon to start")
    assert list(tmp_path.iterdir()) == []
