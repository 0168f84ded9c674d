"""kill -9 at random moments during a replay, restart, repeat: every event learned once, no offset skipped.

The daemon runs as a real process (``python -m streamer run``); the last one is stopped with SIGTERM and
must exit 0 with its offsets committed. Checkpoints are a base plus delta segments, compacted after almost
every checkpoint (``compact_ratio``): one kill comes while a base is being written in the background. Before
the last run the newest checkpoint file is corrupted: the daemon falls back to the state before it and
re-reads Kafka from that state's offsets.
"""

from __future__ import annotations

import random
import re
import signal
import threading

import pytest
from kafka import KafkaConsumer, TopicPartition

from streamer import Trainer
from streamer.datasets import load_events
from streamer.io.checkpoint import CheckpointStore
from streamer.soak_support import process_running
from tests.integration.daemon_support import (
    FAST_GROUP, event_value, manifest_offsets, produce, read_item_vectors, read_manifest, spawn_daemon,
    stop_process, wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KILLS = 3


def test_kill_minus_nine_during_replay_loses_and_repeats_nothing(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path, data_root):
    rows = load_events("diginetica")
    topic = make_topic(partitions=2)
    make_topic(partitions=1, name=f"{topic}-catalog")
    state = tmp_path / "state"
    flags = dict(bootstrap_servers=kafka_bootstrap, redis_url=redis_url, namespace=unique_name, topic=topic,
                 catalog_topic=f"{topic}-catalog", group=f"{unique_name}-group", checkpoint_dir=state,
                 checkpoint_interval=0.7, lease_ttl=2.0, status_interval=1.0, max_poll_records=500,
                 vector_size=128, compact_ratio=0.02, **FAST_GROUP)
    produced = {}
    producer = threading.Thread(target=lambda: produced.update(produce(
        kafka_bootstrap, topic, ((user.encode(), event_value(user, item, ts)) for user, item, ts in rows), rate=700)))
    producer.start()
    chooser = random.Random(20240611)
    log = tmp_path / "daemon.log"
    for kill in range(KILLS):
        process = spawn_daemon(flags, log)
        before = sum(manifest_offsets(state).values())
        wait_for(lambda: sum(manifest_offsets(state).values()) > before, 60, f"progress before kill {kill}")
        if kill == 1:  # while a base is written in the background (its temporary file exists)
            wait_for(lambda: any(state.glob(".base-*.tmp")), 60, "a compaction in progress", interval=0.002)
        else:
            threading.Event().wait(chooser.uniform(0.0, 1.5))
        assert process.poll() is None, log.read_text()[-3000:]
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        fetchers = [int(pid) for pid in re.findall(r"fetcher_started pid=(\d+)", log.read_text())]
        wait_for(lambda: not any(process_running(pid) for pid in fetchers), 30, "the killed daemon's fetcher to leave")
    producer.join(120)
    assert sum(produced.values()) == len(rows)
    newest = state / read_manifest(state)["chain"][-1]["name"]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # a corrupt segment (or base: the previous chain is used)
    newest.write_bytes(bytes(data))

    corrupted = read_manifest(state)  # it may hold every offset already (the last killed daemon learned them all)
    process = spawn_daemon(flags, log)
    # wait for a checkpoint of the restarted daemon: a SIGTERM sent before its interpreter runs streamer's first
    # line meets the default action (exit -15); the old manifest said "every offset" at once and sent it that early
    wait_for(lambda: read_manifest(state) != corrupted and sum(manifest_offsets(state).values()) == len(rows), 120,
             "every offset in a checkpoint of the restarted daemon")
    assert stop_process(process, signal.SIGTERM) == 0, log.read_text()[-3000:]

    manifest = read_manifest(state)
    assert manifest["event_count"] == len(rows), "an event was skipped or learned twice"
    assert manifest_offsets(state) == {(topic, partition): count for partition, count in produced.items()}
    engine, _ = CheckpointStore(state).load(Trainer.load)
    items = {item for _, item, _ in rows}
    assert engine.event_count == len(rows)
    assert all(engine.vector(item) is not None for item in items)
    assert set(read_item_vectors(redis_client, unique_name)) == items
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"{unique_name}-group",
                             enable_auto_commit=False)
    try:
        for partition, count in produced.items():
            assert consumer.committed(TopicPartition(topic, partition)) == count
    finally:
        consumer.close()
    assert log.read_text().count("model_loaded") == KILLS + 1
    assert "checkpoint_fallback" in log.read_text()
