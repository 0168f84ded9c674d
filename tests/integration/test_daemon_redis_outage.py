"""Redis stopped and started again (empty) during a replay: training goes on, every vector lands afterwards."""

from __future__ import annotations

import subprocess
import threading

import numpy as np
import pytest
import redis

from streamer.datasets import load_events
from streamer.localstack import LOOPBACK, find_redis_server, free_port
from tests.integration.daemon_support import (
    DaemonThread, event_value, manifest_offsets, produce, read_item_vectors, settings_for, wait_for,
)

pytestmark = pytest.mark.integration


def _start_redis(port: int, log_path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        process = subprocess.Popen([find_redis_server(), "--port", str(port), "--bind", LOOPBACK, "--save", "",
                                    "--appendonly", "no"], stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(host=LOOPBACK, port=port)
    wait_for(lambda: _pings(client), 20, "redis-server to answer")
    return process


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(20)


def test_vectors_land_after_redis_comes_back(kafka_bootstrap, make_topic, unique_name, tmp_path, data_root):
    rows = load_events("diginetica")
    items = {item for _, item, _ in rows}
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    port = free_port()
    server = _start_redis(port, tmp_path / "redis.log")
    client = redis.Redis(host=LOOPBACK, port=port)
    settings = settings_for(kafka_bootstrap, f"redis://{LOOPBACK}:{port}/0", unique_name, topic, tmp_path / "state",
                            max_poll_records=300, vector_size=16,
                            publish_threshold=0.0)  # every change is published: Redis must equal the engine
    messages = [(user.encode(), event_value(user, item, ts)) for user, item, ts in rows]
    try:
        with DaemonThread(settings) as running:
            producer = threading.Thread(target=produce, args=(kafka_bootstrap, topic, messages), kwargs={"rate": 1500})
            producer.start()
            wait_for(lambda: len(read_item_vectors(client, unique_name)) > 100, 60, "the first vectors in Redis")
            _stop(server)
            learned_while_down = running.daemon.metrics.events._value.get()
            wait_for(lambda: running.daemon.metrics.events._value.get() > learned_while_down + 1000, 60,
                     "training to go on while Redis is down")
            wait_for(lambda: running.daemon.metrics.flush_errors._value.get() > 0, 30,
                     "a failed flush (the write runs on the publisher thread)")
            server = _start_redis(port, tmp_path / "redis.log")
            producer.join(60)
            wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0)) == len(rows), 90,
                     "every event in the checkpoint")
            sink, engine = running.daemon.active.sink, running.daemon.active.engine
            # spare-time replay changes vectors after the last event: compare once it is paid and flushed
            wait_for(lambda: engine.replay_debt == 0, 60, "the owed replay to be paid")
            active = running.daemon.active  # what the last replay slice moved is taken at the next flush
            wait_for(lambda: not active.replayed_untaken and not sink.pending and not active.publisher.in_flight, 30,
                     "every dirty vector flushed")
            served = read_item_vectors(client, unique_name)
            ids, vectors = running.daemon.active.engine.vectors()
            assert running.alive
        assert set(served) == items == set(ids)
        for item, vector in zip(ids, vectors):
            assert np.array_equal(served[item], vector), item
        assert client.hget(f"{unique_name}:meta", "item_count") == str(len(items)).encode()
    finally:
        _stop(server)
