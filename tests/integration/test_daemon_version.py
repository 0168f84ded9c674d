"""``version`` (each item hash) and meta ``model_version`` only increase, also across a restart from a
checkpoint older than what was published (a kill -9 between checkpoints) (issue 16 item 9)."""

from __future__ import annotations

import shutil
import time

import pytest

from streamer.keys import Keys
from tests.integration.daemon_support import (
    DaemonThread, OwnRedis, event_value, manifest_offsets, produce, settings_for, wait_for,
)

pytestmark = pytest.mark.integration


def _versions(client, namespace: str) -> dict[str, int]:
    keys = Keys(namespace)
    names = list(client.scan_iter(match=f"{keys.item_prefix}*", count=5000))
    return {keys.item_id(name): int(client.hget(name, "version")) for name in names}


def _events(now: float) -> list[tuple[bytes, bytes]]:
    """1,600 events of 9 users over 40 items, one a second from 900 s before ``now``."""
    return [(f"u{index % 9}".encode(), event_value(f"u{index % 9}", f"i{index % 40}", now - 900 + index))
            for index in range(1600)]


def test_versions_never_decrease_across_a_restart_from_an_older_checkpoint(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    state, older = tmp_path / "state", tmp_path / "older"
    events = _events(time.time())
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, state, vector_size=8)
    meta = Keys(unique_name).meta
    with DaemonThread(settings):
        produce(kafka_bootstrap, topic, events[:400])
        wait_for(lambda: manifest_offsets(state).get((topic, 0)) == 400, 60, "a checkpoint of 400 events")
        shutil.copytree(state, older)  # what a kill -9 right after this checkpoint would leave
        produce(kafka_bootstrap, topic, events[400:1500])
        wait_for(lambda: manifest_offsets(state).get((topic, 0)) == 1500, 60, "a checkpoint of 1,500 events")
        wait_for(lambda: redis_client.hget(meta, "model_version") == b"1500", 30, "model_version 1500 in Redis")
    published = _versions(redis_client, unique_name)
    assert max(published.values()) == 1500
    shutil.rmtree(state)
    shutil.copytree(older, state)
    with DaemonThread(settings) as running:
        produce(kafka_bootstrap, topic, events[1500:])
        wait_for(lambda: running.daemon.active and running.daemon.active.engine.event_count > 400, 60,
                 "new events learned")
        sink = running.daemon.active.sink
        wait_for(lambda: not sink.pending, 30, "everything published")
        assert int(redis_client.hget(meta, "model_version")) > 1500
    for item, version in _versions(redis_client, unique_name).items():
        assert version >= published.get(item, 0), item


def test_versions_never_decrease_when_redis_restarted_empty_and_the_daemon_restarts(
        kafka_bootstrap, make_topic, unique_name, tmp_path):
    """No meta is left to read (Redis lost everything) and the daemon restarts from a checkpoint older than its
    last flushes: versions still continue above what was published (the bound kept next to the checkpoint)."""
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    state, older = tmp_path / "state", tmp_path / "older"
    events = _events(time.time())
    meta = Keys(unique_name).meta
    with OwnRedis(tmp_path / "redis.log") as server:
        client = server.client()
        settings = settings_for(kafka_bootstrap, server.url, unique_name, topic, state, vector_size=8)
        with DaemonThread(settings):
            produce(kafka_bootstrap, topic, events[:400])
            wait_for(lambda: manifest_offsets(state).get((topic, 0)) == 400, 60, "a checkpoint of 400 events")
            shutil.copytree(state, older)  # what a kill -9 right after this checkpoint would leave
            produce(kafka_bootstrap, topic, events[400:1500])
            wait_for(lambda: client.hget(meta, "model_version") == b"1500", 60, "model_version 1500 in Redis")
        published = _versions(client, unique_name)
        client.close()
        server.restart()  # empty: no meta, no versions left to continue from
        client = server.client()
        shutil.rmtree(state)
        shutil.copytree(older, state)
        with DaemonThread(settings):
            produce(kafka_bootstrap, topic, events[1500:])  # every item changes again
            wait_for(lambda: client.hget(meta, "model_version") is not None, 60, "meta written again")
            first = int(client.hget(meta, "model_version"))
            wait_for(lambda: set(_versions(client, unique_name)) == set(published), 60, "every item published again")
            again = _versions(client, unique_name)
        client.close()
    assert max(published.values()) == 1500
    assert first > 1500, f"model_version went back from 1500 to {first}"
    for item, version in again.items():
        assert version > published[item], item
