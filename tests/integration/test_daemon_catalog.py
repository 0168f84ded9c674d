"""Catalog updates: an upsert of a never-seen item is published at once; a retire removes it from Redis."""

from __future__ import annotations

import orjson
import pytest

from streamer.keys import Keys, decode_vector
from tests.integration.daemon_support import DaemonThread, produce, settings_for, wait_for

pytestmark = pytest.mark.integration
ITEMS = [f"p{index}" for index in range(12)]


def _events(start_ts: float, items: list[str], users: int = 30) -> list[tuple[bytes, bytes]]:
    messages, ts = [], start_ts
    for user in range(users):
        for step in range(6):
            ts += 1.0
            item = items[(user + step * (user % 3 + 1)) % len(items)]
            messages.append((f"u{user}".encode(), orjson.dumps({"user": f"u{user}", "item": item, "ts": ts})))
    return messages


def test_upserted_item_is_published_before_any_click_and_retire_removes_it(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    catalog = make_topic(partitions=1, name=f"{topic}-catalog")
    keys = Keys(unique_name)
    # Periodic flushes and checkpoints are far away: only the catalog path can publish within the test.
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", flush_interval=600.0,
                            checkpoint_interval=600.0, neighbours_interval=0.2, neighbours_count=5, vector_size=16,
                            subsample=0.0)  # a dozen items: frequent-item subsampling would skip most pairs
    with DaemonThread(settings) as running:
        produce(kafka_bootstrap, catalog, [(item.encode(), orjson.dumps(
            {"op": "upsert", "item": item, "attrs": {"brand": "acme" if index % 2 else "zeta"}}))
            for index, item in enumerate(ITEMS)])
        events = _events(1_700_000_000.0, ITEMS)
        produce(kafka_bootstrap, topic, events)
        wait_for(lambda: running.daemon.active and running.daemon.active.engine.event_count == len(events), 60,
                 "the events to be learned")
        engine = running.daemon.active.engine

        produce(kafka_bootstrap, catalog, [(b"fresh", orjson.dumps(
            {"op": "upsert", "item": "fresh", "attrs": {"brand": "acme"}, "ts": 1_700_000_500.0}))])
        wait_for(lambda: redis_client.exists(keys.item("fresh")), 30, "the new item's vector in Redis")
        stored = decode_vector(redis_client.hget(keys.item("fresh"), "vec"))
        assert stored.shape == (16,) and stored.any()
        assert engine.event_count == len(events), "the new item was published without any click on it"

        produce(kafka_bootstrap, catalog, [(item.encode(), orjson.dumps({"op": "retire", "item": item}))
                                           for item in ("fresh", "p1")])
        wait_for(lambda: not redis_client.exists(keys.item("fresh"), keys.item("p1"), keys.neighbours("p1")), 30,
                 "the retired items to leave Redis")
        # Any neighbour list written from now on was computed after the retire (the loop refreshes
        # lists synchronously, and it removed the retired vectors only after learning the retire).
        redis_client.delete(keys.neighbours("p0"), keys.neighbours("p2"))
        produce(kafka_bootstrap, topic, _events(1_700_001_000.0, ["p0", "p2", "p3"], users=4))
        wait_for(lambda: redis_client.exists(keys.neighbours("p0"), keys.neighbours("p2")) == 2, 30,
                 "the neighbour lists of changed items to be refreshed")
        for item in ("p0", "p2"):
            members = {member.decode() for member in redis_client.zrange(keys.neighbours(item), 0, -1)}
            assert members and "p1" not in members and "fresh" not in members
        assert engine.vector("fresh") is None and engine.vector("p1") is None
        assert running.alive
