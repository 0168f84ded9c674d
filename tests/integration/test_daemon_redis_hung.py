"""A hung Redis (redis-server stopped with SIGSTOP, longer than the lease lives) does not stall learning:
events are learned all along, checkpoints are saved, offsets are committed only once Redis has the
vectors again, and everything is published after SIGCONT (issue 16 item 8). The test stops a
redis-server of its own, never the session's."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from kafka import KafkaConsumer

from streamer.io.kafka_source import committed_total
from tests.integration.daemon_support import (
    DaemonThread, OwnRedis, event_value, manifest_offsets, produce, read_item_vectors, settings_for, wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STOPPED_SECONDS = 12.0  # four lease lifetimes (lease_ttl 3 s in the test settings)
WINDOW = 2.0


def _events(count: int, now: float) -> list[tuple[bytes, bytes]]:
    return [(f"u{index % 60}".encode(), event_value(f"u{index % 60}", f"i{(index * 13) % 700}", now - 900 + index * 0.05))
            for index in range(count)]


def test_learning_goes_on_while_redis_hangs(kafka_bootstrap, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    messages = _events(12_000, time.time())
    checker = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"{unique_name}-group", enable_auto_commit=False)
    with OwnRedis(tmp_path / "redis.log") as server:
        client = server.client()
        settings = settings_for(kafka_bootstrap, server.url, unique_name, topic, tmp_path / "state", vector_size=8,
                                neighbours_interval=0.5, checkpoint_interval=1.0)
        with DaemonThread(settings) as running:
            metrics = running.daemon.metrics
            produce(kafka_bootstrap, topic, messages[:2000])
            wait_for(lambda: len(read_item_vectors(client, unique_name)) > 100, 60, "the first vectors in Redis")
            producer = threading.Thread(target=produce, args=(kafka_bootstrap, topic, messages[2000:]),
                                        kwargs={"rate": 700})
            producer.start()
            server.process.send_signal(signal.SIGSTOP)
            try:
                stalled_windows, began = [], time.monotonic()
                while time.monotonic() - began < STOPPED_SECONDS:
                    before = metrics.events._value.get()
                    time.sleep(WINDOW)
                    if metrics.events._value.get() == before:
                        stalled_windows.append(round(time.monotonic() - began, 1))
                committed_while_hung = committed_total(checker, topic)
                learned = manifest_offsets(tmp_path / "state").get((topic, 0), 0)
            finally:
                server.process.send_signal(signal.SIGCONT)
            producer.join(60)
            assert stalled_windows == [], f"no event learned in the {WINDOW} s windows ending at {stalled_windows} s"
            assert learned > 2000  # checkpoints went on being saved while Redis hung
            assert committed_while_hung < learned  # ... but their offsets waited for Redis
            wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0)) == len(messages), 90,
                     "every event in the checkpoint")
            wait_for(lambda: committed_total(checker, topic) == len(messages), 60, "every offset committed")
            sink = running.daemon.active.sink
            wait_for(lambda: not sink.pending, 60, "every dirty vector flushed")
            ids, _ = running.daemon.active.engine.vectors()
            assert running.alive and running.daemon.active.lease.value is not None
            assert set(read_item_vectors(client, unique_name)) == set(ids)
        client.close()
    checker.close()
