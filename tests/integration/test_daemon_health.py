"""/healthz and /readyz of the real daemon against the real broker and redis-server.

Ready only while this instance holds the namespace lease and has partitions assigned; a standby is live but
not ready; a hung Redis (a redis-server of this test, stopped with SIGSTOP) no longer blocks the loop, so the
daemon stays live; a loop really blocked (held inside a learning step) is not live, and live again once it moves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest

from streamer.localstack import LocalStack, free_port
from tests.integration.daemon_support import DaemonThread, REPOSITORY, produce, settings_for, wait_for

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except urllib.error.URLError:  # the daemon thread has not opened its port yet
        return 0, {"reasons": []}


def _events(count: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"u{index % 5}".encode(), orjson.dumps({"user": f"u{index % 5}", "item": f"i{index % 11}",
                                                     "ts": 1_700_000_000.0 + start + index}))
            for index in range(start, start + count)]


def _lease_is(redis_client, namespace: str, daemon) -> bool:
    value = redis_client.get(f"{namespace}:lease")
    active = daemon.active
    return value is not None and active is not None and value.decode() == active.lease.value


def test_ready_only_with_the_lease_and_partitions_and_a_standby_is_live_but_not_ready(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=2)
    make_topic(partitions=1, name=f"{topic}-catalog")
    produce(kafka_bootstrap, topic, _events(100))
    first_port, second_port = free_port(), free_port()
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", vector_size=8,
                            metrics_port=first_port)
    seen = []
    with DaemonThread(settings) as first:
        def observe():
            status, body = _get(first_port, "/readyz")
            active = first.daemon.active
            assigned = bool(active is not None and active.source.assigned)
            if status:
                seen.append((status, body["reasons"], _lease_is(redis_client, unique_name, first.daemon),
                             assigned))
            return status == 200
        wait_for(observe, 60, "the first daemon to be ready", interval=0.05)
        assert all(lease and assigned for status, _, lease, assigned in seen if status == 200)
        early = [reasons for status, reasons, _, _ in seen if status == 503]
        assert early, "the daemon was ready before it could have joined the group"
        assert any(reason.startswith(("lease:", "group:", "engine:", "busy:")) for reason in early[0])

        standby_settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state",
                                        vector_size=8, metrics_port=second_port)
        with DaemonThread(standby_settings) as second:
            wait_for(lambda: _get(second_port, "/healthz")[0] == 200, 30, "the standby to answer /healthz")
            for _ in range(10):  # a few lease-renew periods: it stays a standby
                status, body = _get(second_port, "/readyz")
                assert status == 503 and body["conditions"]["lease"]["ok"] is False, body
                assert "standby" in body["conditions"]["lease"]["reason"]
                assert _get(second_port, "/healthz")[0] == 200
                assert _get(first_port, "/readyz")[0] == 200
                time.sleep(0.3)
            first.stop()
            wait_for(lambda: _get(second_port, "/readyz")[0] == 200, 60, "the standby to take over and be ready")
            assert _lease_is(redis_client, unique_name, second.daemon)
            assert second.daemon.active.source.assigned


def test_a_hung_redis_does_not_stall_the_loop_so_the_daemon_stays_live(
        kafka_bootstrap, make_topic, unique_name, tmp_path):
    """A hung Redis used to block the loop (and /healthz reported it, 503); since issue 16 item 8 the loop
    never waits on Redis, so the daemon stays live and learns on. The stall path itself (no beat within
    --stall-timeout: 503) is tested in tests/io/test_health.py."""
    stack = LocalStack(log_dir=tmp_path / "redis-log")
    redis = stack.start_redis()  # this test's own redis-server, so stopping it disturbs no other test
    topic = make_topic(partitions=1)
    port = free_port()
    try:
        settings = settings_for(kafka_bootstrap, stack.redis_url, unique_name, topic, tmp_path / "state",
                                vector_size=8, metrics_port=port, stall_timeout=1.0, lease_ttl=60.0,
                                catalog_topic="", neighbours_interval=0.2)
        with DaemonThread(settings) as running:
            produce(kafka_bootstrap, topic, _events(200))
            wait_for(lambda: _get(port, "/readyz")[0] == 200, 60, "the daemon to be ready")
            os.kill(redis.pid, signal.SIGSTOP)
            try:
                produce(kafka_bootstrap, topic, _events(200, start=200))
                answers = []
                for _ in range(30):  # 3 s, three stall timeouts
                    answers.append(_get(port, "/healthz")[0])
                    time.sleep(0.1)
                assert set(answers) == {200}
                wait_for(lambda: running.daemon.active.engine.event_count == 400, 30, "the events learned meanwhile")
            finally:
                os.kill(redis.pid, signal.SIGCONT)
            wait_for(lambda: _get(port, "/healthz")[0] == 200, 60, "the daemon live after Redis is back")
    finally:
        stack.stop()


def test_a_busy_metrics_port_is_one_line_and_the_address_is_logged(kafka_bootstrap, redis_url, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        environment = {key: value for key, value in os.environ.items() if not key.startswith("STREAMER_")}
        result = subprocess.run(
            [sys.executable, "-m", "streamer", "run", "--bootstrap-servers", kafka_bootstrap, "--redis-url", redis_url,
             "--metrics-port", str(busy), "--checkpoint-dir", str(tmp_path / "state")],
            cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"streamer: error: metrics port {busy} is already in use "
                      "(choose another with --metrics-port or STREAMER_METRICS_PORT)"], result.stderr
    assert "Traceback" not in result.stderr


def test_a_loop_blocked_in_the_engine_is_not_live_and_live_again_when_it_moves(
        kafka_bootstrap, redis_url, make_topic, unique_name, tmp_path):
    """The real daemon's loop is held inside a learning step (the engine's ``learn`` waits on an event of
    this test): no beat within --stall-timeout, so /healthz answers 503 (and /readyz too); released, the loop
    beats again and both answer 200."""
    import threading

    topic = make_topic(partitions=1)
    port = free_port()
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", vector_size=8,
                            metrics_port=port, stall_timeout=1.0, catalog_topic="")
    with DaemonThread(settings) as running:
        produce(kafka_bootstrap, topic, _events(50))
        wait_for(lambda: _get(port, "/readyz")[0] == 200, 60, "the daemon to be ready")
        engine, release, entered = running.daemon.active.engine, threading.Event(), threading.Event()
        learn = engine.learn

        def held(*args, **kwargs):
            entered.set()
            release.wait(60)
            return learn(*args, **kwargs)

        engine.learn = held
        try:
            produce(kafka_bootstrap, topic, _events(50, start=50))
            wait_for(entered.is_set, 30, "the loop to enter the held learning step")
            wait_for(lambda: _get(port, "/healthz")[0] == 503, 10, "/healthz to report the stalled loop")
            assert _get(port, "/readyz")[0] == 503
        finally:
            engine.learn = learn
            release.set()
        wait_for(lambda: _get(port, "/healthz")[0] == 200, 30, "the daemon live again")
        wait_for(lambda: running.daemon.active.engine.event_count == 100, 30, "every event learned")
        assert _get(port, "/readyz")[0] == 200
