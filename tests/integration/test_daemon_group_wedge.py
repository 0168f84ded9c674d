"""Issue 16, item 1: a group wedged by a member that left while joining is noticed, reported and left.

Tansu 0.6.0 keeps such a group at generation 1 with the departed member as leader, and every SyncGroup
answers REBALANCE_IN_PROGRESS. The test drives the real broker into that state the way a killed daemon's
orphaned fetch process does — a consumer that closes (LeaveGroup) while its JoinGroup is pending — then
starts the daemon. Before the fix it was subscribed for ever without a partition, said nothing and
learned nothing.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import orjson
import pytest

from tests.integration.daemon_support import DaemonThread, manifest_offsets, produce, settings_for, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A member that leaves while its JoinGroup is pending (Tansu holds a first join about half the session timeout).
LEAVE_WHILE_JOINING = r"""
import sys, time
from kafka import KafkaConsumer
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], group_id=sys.argv[2], enable_auto_commit=False,
                         session_timeout_ms=3000, heartbeat_interval_ms=1000)
consumer.subscribe(sys.argv[3:])
began = time.monotonic()
while time.monotonic() - began < 1.0:
    consumer.poll(200)
assert not consumer.assignment(), "joined before leaving: the group is not wedged"
consumer.close()
"""


def test_daemon_leaves_a_wedged_group_and_learns(kafka_bootstrap, redis_url, redis_client, make_topic, unique_name,
                                                  tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="streamer")
    topic = make_topic(partitions=2)
    make_topic(partitions=1, name=f"{topic}-catalog")
    state = tmp_path / "state"
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, state, vector_size=8, subsample=0.0)
    produce(kafka_bootstrap, topic, [(f"u{index % 5}".encode(), orjson.dumps(
        {"user": f"u{index % 5}", "item": f"i{index % 11}", "ts": 1_700_000_000.0 + index})) for index in range(200)])
    subprocess.run([sys.executable, "-c", LEAVE_WHILE_JOINING, kafka_bootstrap, settings.group, topic,
                    f"{topic}-catalog"], check=True, timeout=60)

    with DaemonThread(settings) as running:
        health = running.daemon.health
        wait_for(lambda: "wedged" in (getattr(health.condition("group"), "reason", "") or ""), 60,
                 "the daemon to report the wedged group as not ready")
        assert not health.condition("group").ok
        wait_for(lambda: sum(manifest_offsets(state).values()) == 200, 60, "every event learned after rejoining")
        wait_for(lambda: health.condition("group").ok, 10, "the group condition ready again")
    assert "group_wedged" in caplog.text and "group_rejoin" in caplog.text
