"""Issue 16, item 2: a topic recreated after a broker restart is learned from its beginning, never skipped.

Tansu keeps topics in memory, so a restarted broker has none; the topic is created again and filled with
new events. Before the fix the daemon seeked each partition to its old checkpointed offset, beyond the new
partition's end, and skipped every event below it (``lag=0``, no error). This test has its own broker,
restarted on the same port, and restarts it three times: under a running daemon (the fetcher sees the topic id change), while the
daemon is down and the new topic has grown past the old offset (only the saved topic id tells the two
topics apart), and while the daemon is down without a saved id (as written by an older version) and
the new topic is shorter than the old offset (the offset beyond the partition's end gives it away).
"""

from __future__ import annotations

import orjson
import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streamer.localstack import LocalStack
from tests.integration.daemon_support import DaemonThread, manifest_offsets, produce, read_manifest, settings_for, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Tansu creates a missing topic with 4 partitions when a client asks for its metadata: the daemon's
# consumer may recreate it before the test does, so the test's topics have the same 4 partitions.
PARTITIONS = 4


@pytest.fixture
def own_stack(tmp_path):
    stack = LocalStack(log_dir=tmp_path / "stack")
    stack.start()
    yield stack
    stack.stop()


def create_topics(bootstrap: str, *names: str, partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streamer-tests")
    try:
        for name in names:
            try:
                admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
            except TopicAlreadyExistsError:  # a client's metadata request may have auto-created it first
                pass
    finally:
        admin.close()


def saved_topic_ids(state) -> dict:
    """The topic ids saved with the newest checkpoint's offsets."""
    manifest = read_manifest(state)
    return manifest["chain"][-1].get("topic_ids", {}) if manifest else {}


def _forget_topic_ids(state) -> None:
    manifest = read_manifest(state)
    for link in manifest["chain"] + manifest["previous"]:
        link.pop("topic_ids", None)
    (state / "manifest.json").write_bytes(orjson.dumps(manifest))


def learned(state, topic: str) -> int:
    """The checkpoint's next offsets summed over the topic's partitions."""
    return sum(offset for (name, _), offset in manifest_offsets(state).items() if name == topic)


def _events(prefix: str, count: int, phase: int) -> list[tuple[bytes, bytes]]:
    """Each phase later than the one before (earlier events would be dead letters: too late)."""
    return [(f"u{index % 9}".encode(), orjson.dumps({"user": f"u{index % 9}", "item": f"{prefix}{index % 13}",
                                                      "ts": 1_700_000_000.0 + phase * 10_000 + index}))
            for index in range(count)]


def test_recreated_topic_is_learned_from_its_beginning(own_stack, tmp_path, unique_name, capfd):
    bootstrap, topic, state = own_stack.bootstrap_servers, f"{unique_name}-events", tmp_path / "state"
    create_topics(bootstrap, topic, f"{topic}-catalog")
    settings = settings_for(bootstrap, own_stack.redis_url, unique_name, topic, state, vector_size=8, subsample=0.0)
    produce(bootstrap, topic, _events("old", 300, 0))
    with DaemonThread(settings) as running:
        wait_for(lambda: learned(state, topic) == 300, 60, "300 events of the first topic")
        old_id = wait_for(lambda: saved_topic_ids(state).get(topic), 30, "the first topic's id saved")

        own_stack.restart_broker()  # under the running daemon; the new topic stays shorter than offset 300
        create_topics(bootstrap, topic, f"{topic}-catalog")
        produce(bootstrap, topic, _events("new", 200, 1))
        wait_for(lambda: read_manifest(state)["event_count"] == 500, 90, "the 200 events of the recreated topic")
        assert learned(state, topic) == 200
        assert "partition_reread" in capfd.readouterr().err  # the fetch process logs it
        assert running.daemon.active.engine.vector("new0") is not None
        second_id = wait_for(lambda: saved_topic_ids(state).get(topic) not in (None, old_id)
                             and saved_topic_ids(state)[topic], 30, "the recreated topic's id saved")

    own_stack.restart_broker()  # while no daemon runs; the new topic grows past the checkpointed offset 200
    create_topics(bootstrap, topic, f"{topic}-catalog")
    produce(bootstrap, topic, _events("third", 350, 2))
    with DaemonThread(settings):
        wait_for(lambda: read_manifest(state)["event_count"] == 850, 90, "all 350 events of the third topic")
        assert learned(state, topic) == 350
    assert "topic id changed" in capfd.readouterr().err
    assert saved_topic_ids(state)[topic] not in (old_id, second_id)

    _forget_topic_ids(state)  # as in a checkpoint written by an older version
    own_stack.restart_broker()
    create_topics(bootstrap, topic, f"{topic}-catalog")
    produce(bootstrap, topic, _events("fourth", 100, 3))
    with DaemonThread(settings):
        wait_for(lambda: read_manifest(state)["event_count"] == 950, 90, "all 100 events of the fourth topic")
        assert learned(state, topic) == 100
    assert "beyond the partition's end" in capfd.readouterr().err
