"""One valid event 23 h ahead (accepted under --max-future-seconds 86400) must not close every user's
session in the daemon (issue 16 item 7): the watermark waits for a quorum of events."""

from __future__ import annotations

import time

import pytest

from tests.integration.daemon_support import DaemonThread, event_value, manifest_offsets, produce, settings_for, wait_for

pytestmark = pytest.mark.integration
USERS = 300


def test_one_event_from_a_clock_23_hours_ahead_closes_no_one_elses_session(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    now = time.time()
    first = [(f"u{index}", f"a{index % 23}", now - 600 + index) for index in range(USERS)]
    ahead = [("clock", "x", now + 23 * 3600)]
    second = [(f"u{index}", f"b{index % 19}", now - 200 + index) for index in range(USERS)]
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state",
                            max_future_seconds=86400.0, vector_size=8)
    with DaemonThread(settings) as running:
        for part in (first, ahead, second):  # in separate polls as well as possible: the quorum spans them
            produce(kafka_bootstrap, topic, [(user.encode(), event_value(user, item, ts)) for user, item, ts in part])
        total = len(first) + len(ahead) + len(second)
        wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0)) == total, 90,
                 "every event in the checkpoint")
        engine = running.daemon.active.engine
        assert engine.event_count == total
        assert engine.open_session_count == USERS + 1  # everyone's session is still open (old code: 1)
        assert engine.watermark < now + 3600
