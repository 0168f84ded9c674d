"""Publishing off the loop's thread: snapshots copy the vectors, a failed write puts its ids back (real redis)."""

from __future__ import annotations

import numpy as np
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from streamer import Trainer
from streamer.io.lease import Lease
from streamer.io.publisher import Publisher
from streamer.io.redis_sink import RedisSink
from streamer.keys import FIELD_VECTOR, Keys, decode_vector
from streamer.localstack import free_port

pytestmark = pytest.mark.integration
EVENTS = [("u1", "a", 1.0), ("u1", "b", 2.0), ("u2", "a", 3.0), ("u2", "c", 4.0)]


def _sink(client, namespace: str) -> RedisSink:
    keys = Keys(namespace)
    lease = Lease(client, keys, 30.0)
    assert lease.acquire()
    return RedisSink(client, keys, lease, user_ttl=0, neighbours_count=0)


def test_a_snapshot_writes_the_vectors_of_its_time_while_the_engine_learns_on(redis_url, unique_name):
    client = redis.Redis.from_url(redis_url)
    sink, engine = _sink(client, unique_name), Trainer(vector_size=8, seed=1)
    engine.learn(EVENTS)
    sink.add_items(engine.take_changed(), 100.0)
    snapshot = sink.snapshot(engine)
    at_snapshot = dict(zip(*engine.vectors()))
    assert sink.pending == 1 and not sink.dirty  # taken off the dirty set, still pending until settled
    engine.learn([("u3", "a", 5.0), ("u3", "b", 6.0)] * 20)  # the engine moves on before the write
    publisher = Publisher(sink)
    publisher.submit(snapshot)
    [(written, result, error)] = publisher.close()
    assert written is snapshot and error is None and result.items == 3 and len(result.freshness) == 1
    sink.settled(snapshot, True)
    assert sink.pending == 0
    stored = decode_vector(client.hget(Keys(unique_name).item("a"), FIELD_VECTOR))
    assert np.array_equal(stored, at_snapshot["a"]) and not np.array_equal(stored, engine.vector("a"))
    client.close()


def test_a_failed_write_puts_its_ids_back_keeping_the_oldest_stamp_and_later_retires(redis_url, unique_name):
    client = redis.Redis.from_url(redis_url)
    sink, engine = _sink(client, unique_name), Trainer(vector_size=8, seed=1)
    engine.learn(EVENTS)
    sink.add_items(["a", "b", "c"], 100.0)
    sink.add_retired(["gone"])
    snapshot = sink.snapshot(engine)
    sink._client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)  # Redis is down for the write
    sink._scripts = {name: sink._client.register_script(script.script) for name, script in sink._scripts.items()}
    sink.add_items(["a"], 200.0)  # changed again meanwhile: the older stamp wins
    sink.add_retired(["c"])       # retired meanwhile: stays retired
    publisher = Publisher(sink)
    publisher.submit(snapshot)
    [(_, result, error)] = publisher.close()
    assert result is None and isinstance(error, RedisConnectionError)
    sink.settled(snapshot, False)
    assert sink.dirty == {"a": 100.0, "b": 100.0}
    assert sink.retired == {"gone", "c"}
    assert sink.pending == 4
    client.close()


class _HangingSink:
    """A sink whose writes wait until released (a hung Redis)."""

    def __init__(self):
        import threading

        self.release = threading.Event()

    def write(self, snapshot):
        self.release.wait(30)
        return snapshot


def test_drain_and_close_wait_at_most_their_timeout_for_a_hung_write():
    import time

    sink = _HangingSink()
    publisher = Publisher(sink)
    publisher.submit("first")
    began = time.monotonic()
    assert publisher.drain(0.3) == [] and publisher.in_flight == 1  # still out after the timeout
    assert publisher.close(0.0) == []
    assert time.monotonic() - began < 5.0  # without the timeout: 30 s (the hung write)
    sink.release.set()
    publisher = Publisher(sink)
    publisher.submit("second")
    assert publisher.drain(5.0) == [("second", "second", None)] and publisher.in_flight == 0
