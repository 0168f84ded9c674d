"""Issue 13's black-box check: a daemon holding 300,000 items checkpoints a 5,000-event batch over 1,000 of them,
split over two checkpoints or more, by writing at most 5% of its full state, and commits again after kill -9 and
a restart.

The 300,000 items come from the catalog topic (never clicked: no noise weight, so never negatives). Items learned
from events would be drawn as negatives, 30 per event by default, and those rows change too (their output side):
docs/state.md gives that measurement. Background compaction is set out of the window (``compact_ratio``): it is
amortised over many checkpoints and checked by the crash tests.
"""

from __future__ import annotations

import signal
import time

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streamer import Trainer
from streamer.io.checkpoint import MANIFEST, CheckpointStore
from tests.integration.daemon_support import FAST_GROUP, manifest_offsets, produce, read_manifest, spawn_daemon, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ITEMS, HOT, EVENTS = 300_000, 1_000, 5_000


def _files(directory) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in directory.iterdir() if not path.name.startswith(".")}


def _quiet(directory) -> bool:
    """No base being written now nor 3 s later (the catalog's segments trigger compactions as they come)."""
    for _ in range(2):
        if any(directory.glob(".base-*.tmp")):
            return False
        time.sleep(3.0)
    return True


def test_a_small_batch_writes_what_changed_and_a_killed_daemon_commits_again(
        kafka_bootstrap, redis_url, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    catalog = make_topic(partitions=1, name=f"{topic}-catalog")
    state = tmp_path / "state"
    flags = dict(bootstrap_servers=kafka_bootstrap, redis_url=redis_url, namespace=unique_name, topic=topic,
                 catalog_topic=catalog, group=f"{unique_name}-group", checkpoint_dir=state, checkpoint_interval=30.0,
                 compact_ratio=1000.0, lease_ttl=3.0, status_interval=5.0, replay_passes=0, **FAST_GROUP)
    produce(kafka_bootstrap, catalog, ((b"catalog", orjson.dumps([{"op": "upsert", "item": f"item{index}"}
                                                                  for index in range(start, start + 1000)]))
                                       for start in range(0, ITEMS, 1000)))
    log = tmp_path / "daemon.log"
    process = spawn_daemon(flags, log)
    try:
        wait_for(lambda: manifest_offsets(state).get((catalog, 0)) == ITEMS // 1000, 240, "the catalog in a checkpoint")
        wait_for(lambda: _quiet(state), 240, "the background compactions of the catalog to end")
        # The batch spans at least two checkpoints: its first half waits in Kafka while the daemon restarts with
        # 5 s checkpoints, the second half comes once the first is in a checkpoint. Each checkpoint rewrites the
        # manifest and writes the change of the sink's pending ids (the catalog's neighbour lists still owed): the
        # manifest used to carry all of them (5.9 MB per rewrite: a split batch wrote 0.07 of the state).
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        users = [f"user{index}" for index in range(EVENTS // 5)]
        messages = [(user.encode(), orjson.dumps({"user": user, "item": f"item{(7 * number + step) % HOT}",
                                                  "ts": 1_700_000_000.0 + 10 * number + step}))
                    for number, user in enumerate(users) for step in range(5)]
        produce(kafka_bootstrap, topic, messages[:EVENTS // 2])
        before = _files(state)
        flags["checkpoint_interval"] = 5.0
        process = spawn_daemon(flags, log)
        wait_for(lambda: (read_manifest(state) or {}).get("event_count") == EVENTS // 2, 120, "half in a checkpoint")
        produce(kafka_bootstrap, topic, messages[EVENTS // 2:])
        wait_for(lambda: (read_manifest(state) or {}).get("event_count") == EVENTS, 120, "the batch in a checkpoint")
        after = _files(state)
        new = {name: size for name, size in after.items() if name not in before}
        assert not any(name.startswith("base-") for name in new), "a compaction ran in the window"
        segments = [name for name in new if name.endswith(".seg")]  # other new files (versions.json) count as is
        written = sum(new.values()) + len(segments) * after[MANIFEST]  # each segment came with a manifest rewrite
        engine, _ = CheckpointStore(state).load(Trainer.load)
        engine.save(tmp_path / "full.ckpt")
        full = (tmp_path / "full.ckpt").stat().st_size
        print(f"batch wrote {written:,} bytes in {len(segments)} segment(s) ({sorted(new)}) "
              f"of a {full:,}-byte full state: "
              f"ratio {written / full:.4f}")
        assert len(segments) >= 2 and written <= 0.05 * full

        process.send_signal(signal.SIGKILL)
        process.wait(30)
        killed_at = time.monotonic()
        process = spawn_daemon(flags, log)
        produce(kafka_bootstrap, topic, messages[:10])
        wait_for(lambda: manifest_offsets(state).get((topic, 0)) == EVENTS + 10, 120, "a checkpoint after the restart")
        consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"{unique_name}-group",
                                 enable_auto_commit=False)
        try:
            wait_for(lambda: consumer.committed(TopicPartition(topic, 0)) == EVENTS + 10, 60, "the commit")
        finally:
            consumer.close()
        print(f"committed again {time.monotonic() - killed_at:.1f} s after the kill")
        assert (read_manifest(state) or {}).get("event_count") == EVENTS + 10  # nothing lost, nothing twice
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
