"""Redis restarted (empty) while the daemon is idle: the daemon notices the new server (its run_id, read at
each lease renewal) and publishes everything again, vectors, neighbour lists, user vectors and meta,
without a single new event (issue 16 item 6)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from streamer.keys import Keys
from tests.integration.daemon_support import (
    DaemonThread, OwnRedis, event_value, manifest_offsets, produce, read_item_vectors, settings_for, wait_for,
)

pytestmark = pytest.mark.integration
USERS, ITEMS = 40, 300


def _published(client, namespace: str) -> dict:
    keys = Keys(namespace)
    return {"items": len(read_item_vectors(client, namespace)),
            "lists": sum(1 for _ in client.scan_iter(match=keys.neighbours("*"), count=5000)),
            "users": sum(1 for _ in client.scan_iter(match=keys.user("*"), count=5000)),
            "meta": client.hget(keys.meta, "item_count")}


def test_everything_is_published_again_after_an_idle_redis_restart(kafka_bootstrap, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    now = time.time()
    events = [(f"u{index % USERS}", f"i{(index * 7) % ITEMS}", now - 600 + index * 0.1) for index in range(3000)]
    with OwnRedis(tmp_path / "redis.log") as server:
        client = server.client()
        settings = settings_for(kafka_bootstrap, server.url, unique_name, topic, tmp_path / "state", vector_size=8,
                                neighbours_interval=0.2)
        with DaemonThread(settings) as running:
            produce(kafka_bootstrap, topic, [(user.encode(), event_value(user, item, ts)) for user, item, ts in events])
            wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0)) == len(events), 90,
                     "every event in the checkpoint")
            sink = running.daemon.active.sink
            wait_for(lambda: not sink.pending and not sink.neighbours_due, 60, "everything published")
            before = _published(client, unique_name)
            assert before["items"] == ITEMS and before["lists"] == ITEMS and before["users"] > 0
            run_id = client.info("server")["run_id"]
            server.restart()  # idle: no event arrives from now on; an empty server with a new run_id
            assert client.info("server")["run_id"] != run_id
            wait_for(lambda: _published(client, unique_name) == before, 30,
                     f"vectors, lists, users and meta back ({before})")
            ids, vectors = running.daemon.active.engine.vectors()
            assert running.alive
        served = read_item_vectors(client, unique_name)
        for item, vector in zip(ids, vectors):
            assert np.array_equal(served[item], vector), item
        client.close()
