"""streamer.health: named conditions, the progress beat, and the HTTP endpoint's codes and bodies."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from streamer.errors import ConfigError
from streamer.health import Health, HealthServer, main, serve


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_only_when_every_condition_is_ok_and_the_loop_is_not_stalled():
    clock = Clock()
    health = Health(stall_timeout=10, clock=clock)
    health.set("lease", True)
    health.set("group", False, "no partition assigned")
    ready, body = health.readiness()
    assert not ready and body["reasons"] == ["group: no partition assigned"]
    health.set("group", True)
    assert health.readiness()[0]
    clock.now += 11
    ready, body = health.readiness()
    assert not ready and "no progress for 11.0 s" in body["reasons"][0]
    health.beat()
    assert health.readiness()[0] and health.liveness()[0]


def test_liveness_follows_the_beat_and_a_long_step_is_live_but_not_ready():
    clock = Clock()
    health = Health(stall_timeout=5, clock=clock)
    assert health.liveness()[0]
    clock.now += 6
    live, body = health.liveness()
    assert not live and body["seconds_since_progress"] == 6.0
    with health.long_step("compiling kernels"):
        clock.now += 60
        live, body = health.liveness()
        assert live and body["long_step"] == "compiling kernels"
        assert health.readiness()[1]["reasons"] == ["busy: compiling kernels"]
    assert health.liveness()[0], "leaving the step counts as progress"


def test_a_condition_set_false_by_other_code_keeps_its_reason_until_it_is_ok_again():
    health = Health()
    health.set("group_join", False, "no assignment for 30 s")
    assert health.condition("group_join").reason == "no assignment for 30 s"
    assert health.readiness()[1]["conditions"] == {"group_join": {"ok": False, "reason": "no assignment for 30 s"}}
    health.set("group_join", True, "ignored when ok")
    assert health.condition("group_join").reason == "" and health.readiness()[0]


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_endpoint_answers_200_or_503_with_json_and_keeps_the_metrics_body():
    registry = CollectorRegistry()
    Counter("streamer_probe_test_total", "a counter", registry=registry).inc()
    clock = Clock()
    health = Health(stall_timeout=5, clock=clock)
    health.set("lease", False, "standby")
    server = HealthServer(_free_port(), health, registry, host="127.0.0.1")
    try:
        status, body = _get(server.port, "/readyz")
        assert status == 503 and json.loads(body)["reasons"] == ["lease: standby"]
        status, body = _get(server.port, "/healthz")
        assert status == 200 and json.loads(body)["live"] is True
        health.set("lease", True)
        assert _get(server.port, "/readyz")[0] == 200
        clock.now += 6
        assert _get(server.port, "/healthz")[0] == 503 and _get(server.port, "/readyz")[0] == 503
        status, body = _get(server.port, "/metrics")
        assert status == 200 and b"streamer_probe_test_total 1.0" in body
        assert main(["live", str(server.port)]) == 1
        health.beat()
        assert main(["live", str(server.port)]) == 0 and main(["ready", str(server.port)]) == 0
    finally:
        server.close()


def test_a_busy_port_is_a_one_line_config_error():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics port {port} is already in use") as raised:
            serve(port, Health(), CollectorRegistry())
    assert "\n" not in str(raised.value)
    assert serve(0, Health(), CollectorRegistry()) is None
