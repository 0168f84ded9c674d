"""A data set replayed through Kafka ends up in Redis: every item, with exactly the in-process vectors."""

from __future__ import annotations

import logging
import urllib.request

import numpy as np
import pytest

from streamer import Trainer
from streamer.datasets import load_events
from streamer.keys import Keys, decode_vector
from streamer.localstack import free_port
from tests.integration.daemon_support import (
    DaemonThread, event_value, manifest_offsets, produce, read_item_vectors, settings_for, wait_for,
)

pytestmark = pytest.mark.integration
KNOBS = {"seed": 11, "workers": 1, "replay_passes": 0, "vector_size": 32}


@pytest.mark.parametrize("fetcher", ["process", "inline"])
def test_replayed_data_set_is_published_with_the_in_process_vectors(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path, data_root, caplog, fetcher):
    caplog.set_level(logging.INFO, logger="streamer")
    metrics_port = free_port()
    rows = load_events("diginetica")
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    produce(kafka_bootstrap, topic, ((user.encode(), event_value(user, item, ts)) for user, item, ts in rows))
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state",
                            max_poll_records=777, neighbours_batch=4000, metrics_port=metrics_port,
                            status_interval=0.5, fetcher=fetcher, publish_threshold=0.0,  # every change: exact
                            **KNOBS)

    with DaemonThread(settings) as running:
        wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0)) == len(rows), 120,
                 "the checkpoint to contain every produced event")
        sink = running.daemon.active.sink
        # lists are rewritten within a time budget per turn (docs/neighbours.md): 7,000 of them take a while on a loaded machine
        wait_for(lambda: not sink.pending and not sink.neighbours_due, 180, "the last flush and neighbour refresh")
        served = read_item_vectors(redis_client, unique_name)
        engine = running.daemon.active.engine
        assert engine.event_count == len(rows)
        assert running.alive
        wait_for(lambda: f"events={len(rows)} items={len(set(item for _, item, _ in rows))}" in caplog.text, 10,
                 "a status line with the final counts")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
    assert f"streamer_events_total {float(len(rows))}" in metrics
    assert "streamer_freshness_seconds_bucket" in metrics and "streamer_consumer_lag 0.0" in metrics
    status = [line for line in caplog.text.splitlines() if " status " in line][-1]
    for field in ("events_per_s=", "lag=0", "open_sessions=", "dirty=", "flush_ms=", "dlq=0"):
        assert field in status

    expected = Trainer(**KNOBS)
    expected.learn(rows)
    ids, vectors = expected.vectors()
    assert set(served) == {item for _, item, _ in rows} == set(ids)
    for item, vector in zip(ids, vectors):
        assert np.array_equal(served[item], vector), item

    keys = Keys(unique_name)
    meta = {key.decode(): value.decode() for key, value in redis_client.hgetall(keys.meta).items()}
    assert meta["vector_size"] == "32" and meta["dtype"] == "float32"
    assert int(meta["item_count"]) == len(ids) and int(meta["model_version"]) == len(rows)
    some_item = rows[-1][1]
    neighbours = redis_client.zrevrange(keys.neighbours(some_item), 0, -1, withscores=True)
    assert {item.decode() for item, _ in neighbours} == {item for item, _ in expected.most_similar(some_item, 20)}
    user = rows[-1][0]
    assert np.array_equal(decode_vector(redis_client.get(keys.user(user))), expected.user_vector(user))
    assert 0 < redis_client.ttl(keys.user(user)) <= 86400
