"""Issue 16, item 3: no checkpoint while the group has committed offsets is refused, unless --reset-model.

Before the fix the daemon logged ``model_loaded checkpoint=0 events=0`` and went on from the committed
offsets: a new model of the stream's tail, served beside the old model's vectors.
"""

from __future__ import annotations

import shutil

import orjson
import pytest

from streamer.keys import Keys
from tests.integration.daemon_support import (
    DaemonThread, manifest_offsets, produce, read_item_vectors, read_manifest, settings_for, spawn_daemon, wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _events(count: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"u{index % 11}".encode(), orjson.dumps({"user": f"u{index % 11}", "item": f"i{index % 17}",
                                                       "ts": 1_700_000_000.0 + index}))
            for index in range(start, start + count)]


def test_lost_checkpoint_is_refused_then_reset_model_relearns_everything(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=2)
    make_topic(partitions=1, name=f"{topic}-catalog")
    state = tmp_path / "state"
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, state, vector_size=8, subsample=0.0)
    produce(kafka_bootstrap, topic, _events(300))
    with DaemonThread(settings):
        wait_for(lambda: sum(manifest_offsets(state).values()) == 300, 60, "the first model to learn 300 events")
    old_model = redis_client.hget(Keys(unique_name).meta, "model_id")
    assert old_model, "the first daemon published its meta"

    shutil.rmtree(state)  # the checkpoint is lost; the group's committed offsets are not
    flags = dict(bootstrap_servers=kafka_bootstrap, redis_url=redis_url, namespace=unique_name, topic=topic,
                 catalog_topic=f"{topic}-catalog", group=f"{unique_name}-group", checkpoint_dir=state,
                 session_timeout_ms=3000, heartbeat_interval_ms=1000, vector_size=8)
    log = tmp_path / "refused.log"
    refused = spawn_daemon(flags, log)
    assert refused.wait(60) == 1, log.read_text()[-2000:]
    last_line = log.read_text().strip().splitlines()[-1]
    assert last_line.startswith("streamer: error: no checkpoint in") and "--reset-model" in last_line
    assert "state_missing" in log.read_text()
    assert read_manifest(state) is None, "a refused start writes no checkpoint"

    redis_client.hset(Keys(unique_name).item("ghost"), "vec", b"\0" * 32)  # an old vector no event refreshes
    produce(kafka_bootstrap, topic, _events(200, start=300))
    with DaemonThread(settings_for(kafka_bootstrap, redis_url, unique_name, topic, state, vector_size=8,
                                   subsample=0.0, reset_model=True)) as reset:
        wait_for(lambda: sum(manifest_offsets(state).values()) == 500, 60, "the new model to read from the start")
        wait_for(lambda: redis_client.hget(Keys(unique_name).meta, "model_id") not in (None, old_model), 30,
                 "the new model's meta")
        assert reset.daemon.active.engine.event_count == 500, "every event learned once by the new model"
    assert read_manifest(state)["event_count"] == 500
    assert set(read_item_vectors(redis_client, unique_name)) == {f"i{index}" for index in range(17)}, \
        "the old model's vectors were deleted"
