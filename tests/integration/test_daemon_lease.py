"""One model = one writer: a second daemon waits as a standby; a fenced daemon writes nothing."""

from __future__ import annotations

import logging

import numpy as np
import orjson
import pytest

from streamer import Trainer
from streamer.io.lease import Lease
from streamer.io.redis_sink import FencedError, RedisSink
from streamer.keys import Keys
from tests.integration.daemon_support import DaemonThread, manifest_offsets, produce, settings_for, wait_for

pytestmark = pytest.mark.integration


def _events(count: int, offset: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"u{index % 7}".encode(), orjson.dumps({"user": f"u{index % 7}", "item": f"i{index % 13}",
                                                      "ts": 1_700_000_000.0 + offset + index}))
            for index in range(count)]


def test_second_daemon_is_a_standby_until_the_first_stops(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="streamer")
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    state = tmp_path / "shared-state"  # a standby that is to take the model over needs the same checkpoint
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, state, vector_size=8, subsample=0.0)
    produce(kafka_bootstrap, topic, _events(200))
    with DaemonThread(settings) as first:
        wait_for(lambda: manifest_offsets(state).get((topic, 0)) == 200, 60, "the first daemon to learn")
        with DaemonThread(settings) as second:
            wait_for(lambda: "standby" in caplog.text, 30, "the second daemon to announce it is a standby")
            produce(kafka_bootstrap, topic, _events(100, offset=200))
            wait_for(lambda: manifest_offsets(state).get((topic, 0)) == 300, 60, "the first daemon to go on")
            assert second.daemon.active is None and first.daemon.active is not None
            assert second.daemon.metrics.lease_held._value.get() == 0
            first.stop()
            wait_for(lambda: second.daemon.active is not None, 30, "the standby to take the lease over")
            produce(kafka_bootstrap, topic, _events(50, offset=300))
            wait_for(lambda: manifest_offsets(state).get((topic, 0)) == 350, 60, "the new holder to learn")
            assert second.daemon.active.engine.event_count == 350, "the model was handed over, not restarted"
    assert caplog.text.count("lease_acquired") == 2
    assert caplog.text.count("engine_compiled") == 2  # each holder compiles its kernels before it subscribes


def test_a_fenced_sink_writes_nothing(redis_client, unique_name):
    keys = Keys(unique_name)
    engine = Trainer(vector_size=4, subsample=0.0)
    engine.learn([("u", "a", 1.0), ("u", "b", 2.0)])
    holder = Lease(redis_client, keys, ttl_seconds=30)
    assert holder.acquire()
    sink = RedisSink(redis_client, keys, holder)
    sink.add_items(engine.take_changed(), produced_at=0.0)
    sink.flush(engine)
    assert np.frombuffer(redis_client.hget(keys.item("a"), "vec"), "<f4").shape == (4,)

    redis_client.set(keys.lease, "another-daemon:99", px=30_000)  # our lease expired; someone else took it
    redis_client.delete(keys.item("a"), keys.item("b"), keys.meta)
    sink.add_items(["a", "b"], produced_at=0.0)
    with pytest.raises(FencedError):
        sink.flush(engine)
    assert not redis_client.exists(keys.item("a"), keys.item("b"), keys.meta)
    assert sink.dirty.keys() == {"a", "b"}, "unwritten changes stay dirty"
    newcomer = Lease(redis_client, keys, ttl_seconds=30)
    assert not newcomer.acquire()
