"""Neighbour lists in Redis follow the model: every item gets one, a catalog upsert gets its list with its
vector, and a retired item leaves every list within one refresh (real broker, real redis-server)."""

from __future__ import annotations

import time

import orjson
import pytest

from streamer.datasets import load_events
from streamer.keys import Keys
from tests.integration.daemon_support import DaemonThread, event_value, produce, settings_for, wait_for

pytestmark = pytest.mark.integration
EVENTS = 6_000
INTERVAL = 0.5  # neighbours_interval


def _items_and_lists(client, keys: Keys) -> tuple[set[str], set[str]]:
    items = {key.decode()[len(keys.item("")):] for key in client.scan_iter(match=keys.item("*"), count=1000)}
    lists = {key.decode()[len(keys.neighbours("")):] for key in client.scan_iter(match=keys.neighbours("*"), count=1000)}
    return items, lists


def _holders(client, keys: Keys, item: str) -> set[str]:
    prefix = keys.neighbours("")
    names = list(client.scan_iter(match=keys.neighbours("*"), count=1000))
    pipeline = client.pipeline(transaction=False)
    for key in names:
        pipeline.zscore(key, item)
    return {key.decode()[len(prefix):] for key, score in zip(names, pipeline.execute()) if score is not None}


def test_lists_follow_replay_upsert_and_retire(kafka_bootstrap, redis_url, redis_client, make_topic, unique_name,
                                               tmp_path, data_root):
    rows = load_events("diginetica")[:EVENTS]
    topic = make_topic(partitions=1)
    catalog = make_topic(partitions=1, name=f"{topic}-catalog")
    keys = Keys(unique_name)
    produce(kafka_bootstrap, topic, ((user.encode(), event_value(user, item, ts)) for user, item, ts in rows))
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", neighbours_count=10,
                            neighbours_interval=INTERVAL, flush_interval=0.2, vector_size=16, seed=5)
    with DaemonThread(settings) as running:
        wait_for(lambda: running.daemon.active and running.daemon.active.engine.event_count == len(rows), 120,
                 "the replay to be learned")
        engine = running.daemon.active.engine

        # 1. after the replay, every item with a vector has a list, within a bounded time
        def every_item_listed():
            items, lists = _items_and_lists(redis_client, keys)
            return len(items) == engine.item_count and items <= lists
        wait_for(every_item_listed, 60, "a neighbour list for every item with a vector")

        # 2. a catalog upsert: its vector and its list within 2 s
        produce(kafka_bootstrap, catalog, [(b"brand-new", orjson.dumps(
            {"op": "upsert", "item": "brand-new", "attrs": {"category": "none"}, "ts": rows[-1][2]}))])
        sent = time.monotonic()
        wait_for(lambda: redis_client.exists(keys.item("brand-new"), keys.neighbours("brand-new")) == 2, 10,
                 "the upserted item's vector and list")
        assert time.monotonic() - sent <= 2.0, "an upsert's vector and list take at most 2 s"
        assert redis_client.zcard(keys.neighbours("brand-new")) == 10

        # 3. a retired item leaves every list within one refresh
        popular = _most_listed(redis_client, keys)
        assert len(_holders(redis_client, keys, popular)) > 5
        produce(kafka_bootstrap, catalog, [(popular.encode(), orjson.dumps({"op": "retire", "item": popular}))])
        wait_for(lambda: engine.vector(popular) is None, 10, "the retire to be learned")
        learned = time.monotonic()
        wait_for(lambda: not _holders(redis_client, keys, popular), 10, "the retired item to leave every list")
        assert time.monotonic() - learned <= INTERVAL + settings.neighbours_budget + 1.0, "within one refresh"
        assert not redis_client.exists(keys.item(popular), keys.neighbours(popular))
        assert running.alive


def _most_listed(client, keys: Keys) -> str:
    counts: dict[str, int] = {}
    for key in client.scan_iter(match=keys.neighbours("*"), count=1000):
        for member in client.zrange(key, 0, -1):
            counts[member.decode()] = counts.get(member.decode(), 0) + 1
    return max(counts, key=counts.get)
