"""The integration helpers themselves: a daemon a failed test left running is stopped after it."""

from __future__ import annotations

import pytest

from tests.integration.daemon_support import spawn_daemon, stop_leftovers

pytestmark = pytest.mark.integration


def test_a_spawned_daemon_left_running_is_stopped(kafka_bootstrap, redis_url, make_topic, unique_name, tmp_path):
    topic = make_topic()
    process = spawn_daemon(dict(bootstrap_servers=kafka_bootstrap, redis_url=redis_url, namespace=unique_name,
                                topic=topic, group=f"{unique_name}-group", checkpoint_dir=tmp_path / "state"),
                           tmp_path / "daemon.log")
    assert process.poll() is None
    assert stop_leftovers() == [process.pid]
    assert process.poll() is not None
    assert stop_leftovers() == []
