"""docker-compose.yml parses with docker-compose and wires Kafka (KRaft), Redis Stack, the daemon and a replay.

Validated offline with ``docker-compose -f docker-compose.yml config`` (Debian's docker-compose 1.29); the
resolved configuration it prints is what the assertions read. No Docker engine is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
DAEMON_ENVIRONMENT = (
    "STREAMER_BOOTSTRAP_SERVERS", "STREAMER_TOPIC", "STREAMER_CATALOG_TOPIC", "STREAMER_GROUP",
    "STREAMER_REDIS_URL", "STREAMER_NAMESPACE", "STREAMER_CHECKPOINT_DIR", "STREAMER_FLUSH_INTERVAL",
    "STREAMER_METRICS_PORT",
)


def _yaml_to_python(text: str) -> dict:
    """Parse YAML with PyYAML if this interpreter has it, else with docker-compose's own interpreter."""
    try:
        import yaml
    except ImportError:
        compose = Path(shutil.which("docker-compose")).read_text(errors="replace").splitlines()[0]
        interpreter = compose[2:].strip().split() if compose.startswith("#!") else ["python3"]
        script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"
        result = subprocess.run([*interpreter, "-c", script], input=text, capture_output=True, text=True, check=True)
        return json.loads(result.stdout)
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def compose() -> dict:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose binary not installed (apt-get install docker-compose; .ci/run installs it)")
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("STREAMER_", "KAFKA_", "REDIS_", "COMPOSE_"))}
    result = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config"], cwd=REPOSITORY, env=environment,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"docker-compose config rejected the file:\n{result.stderr}"
    return _yaml_to_python(result.stdout)


def _environment(service: dict) -> dict:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(entry.split("=", 1) for entry in environment)
    return {name: str(value) for name, value in environment.items()}


def test_services_are_kafka_redis_daemon_and_replay(compose):
    assert set(compose["services"]) == {"kafka", "redis", "streamer", "replay"}


def test_kafka_is_the_official_image_in_kraft_mode_with_a_health_check(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    environment = _environment(kafka)
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in environment["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "PLAINTEXT://kafka:9092" in environment["KAFKA_ADVERTISED_LISTENERS"]
    assert not any("ZOOKEEPER" in name for name in environment)
    assert "kafka-broker-api-versions" in " ".join(kafka["healthcheck"]["test"])


def test_redis_is_redis_stack_with_a_ping_health_check(compose):
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis/redis-stack-server")
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_daemon_runs_after_kafka_and_redis_are_healthy(compose):
    daemon = compose["services"]["streamer"]
    assert daemon["build"]["dockerfile"] == "ops/Dockerfile"
    assert daemon.get("command", ["run"]) == ["run"]
    assert daemon["depends_on"] == {"kafka": {"condition": "service_healthy"},
                                    "redis": {"condition": "service_healthy"}}


def test_daemon_gets_every_setting_through_its_environment(compose):
    environment = _environment(compose["services"]["streamer"])
    assert set(DAEMON_ENVIRONMENT) <= set(environment)
    assert environment["STREAMER_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert environment["STREAMER_REDIS_URL"].startswith("redis://redis:6379")
    assert float(environment["STREAMER_FLUSH_INTERVAL"]) > 0


def test_daemon_environment_names_are_settings_of_streamer_run(compose):
    from streamer.config import ENV_PREFIX, Settings

    fields = {field.name for field in dataclasses.fields(Settings)}
    names = {name[len(ENV_PREFIX):].lower() for name in _environment(compose["services"]["streamer"])}
    assert names <= fields


def test_daemon_checkpoints_live_on_a_volume_and_metrics_are_published(compose):
    daemon = compose["services"]["streamer"]
    environment = _environment(daemon)
    mounts = {volume["target"] if isinstance(volume, dict) else volume.split(":")[1]: volume
              for volume in daemon["volumes"]}
    assert environment["STREAMER_CHECKPOINT_DIR"] in mounts
    assert "checkpoints" in compose["volumes"]
    targets = {int(port["target"]) if isinstance(port, dict) else int(str(port).split(":")[-1])
               for port in daemon["ports"]}
    assert int(environment["STREAMER_METRICS_PORT"]) in targets


def test_replay_is_a_one_shot_of_the_same_image_over_a_mounted_data_folder(compose):
    replay, daemon = compose["services"]["replay"], compose["services"]["streamer"]
    assert replay["image"] == daemon["image"]
    assert replay["command"][0] == "replay" and replay["command"][1].startswith("/data/")
    assert replay["restart"] == "no"
    assert replay["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert _environment(replay)["STREAMER_BOOTSTRAP_SERVERS"] == "kafka:9092"
    volumes = [volume if isinstance(volume, str) else f"{volume['source']}:{volume['target']}" for volume in replay["volumes"]]
    assert any(volume.split(":")[1] == "/data" for volume in volumes)


def test_dockerfile_installs_the_package_without_the_local_extra_and_runs_as_non_root():
    lines = [line.strip() for line in (REPOSITORY / "ops" / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(line.startswith("RUN pip install .") for line in instructions)
    assert not any("[local]" in line for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["streamer"]' in instructions and 'CMD ["run"]' in instructions


def _dockerfile_environment() -> dict:
    """The ENV instructions of ops/Dockerfile (``NAME=value`` pairs, continuation lines joined)."""
    text = (REPOSITORY / "ops" / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = [pair for line in text.splitlines() if line.startswith("ENV ") for pair in line[4:].split()]
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_numba_cache_is_filled_in_the_image_and_kept_on_a_compose_volume(compose):
    cache = _dockerfile_environment()["NUMBA_CACHE_DIR"]
    assert not cache.startswith("/tmp"), "a cache in /tmp is lost with the container"
    daemon = compose["services"]["streamer"]
    mounts = {volume["target"] if isinstance(volume, dict) else volume.split(":")[1]: volume
              for volume in daemon["volumes"]}
    assert cache in mounts
    assert "numba-cache" in compose["volumes"]


# Reads the cache the Dockerfile's build step filled: every kernel the daemon's warm-up calls is a cache hit.
LOADS_FROM_CACHE = """
from streamer.core import learning, noise, scoring, sgns
from streamer.core.settings import TrainerSettings
from streamer.core.warmup import warm_up

warm_up(TrainerSettings())
for kernel in (learning.learn_events, learning.replay_pairs, sgns.initialise_rows, noise.fenwick_build,
               scoring.select_top, scoring.prior_counts):
    stats = kernel.stats
    assert sum(stats.cache_hits.values()) and not sum(stats.cache_misses.values()), (kernel, stats)
"""


def test_the_dockerfile_compiles_the_kernels_of_the_installed_package_into_that_cache(tmp_path):
    text = (REPOSITORY / "ops" / "Dockerfile").read_text().replace("\\\n", " ")
    build = [step.strip() for step in text.split("&&") if step.strip().startswith("python -c")]
    assert len(build) == 1, "one build step compiles the kernels"
    assert "&& cd / && python -c" in " ".join(text.split()), "compiled from /: the installed package, not the copy"
    code = build[0][len("python -c"):].strip().split('"')[1]
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    built = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    assert "kernels compiled in" in built.stdout
    assert list((tmp_path / "cache").rglob("*.nbi")), "nothing was written to NUMBA_CACHE_DIR"
    started = subprocess.run([sys.executable, "-c", LOADS_FROM_CACHE], cwd=tmp_path, env=environment,
                             capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stderr


def test_the_daemon_is_healthy_when_ready_and_the_image_checks_liveness(compose):
    from streamer.health import main as probe_main

    daemon = compose["services"]["streamer"]
    assert daemon["healthcheck"]["test"] == ["CMD", "python", "-m", "streamer.health", "ready"]
    assert compose["services"]["replay"]["healthcheck"] == {"test": ["NONE"]}  # disabled: a one-shot, no endpoint
    text = " ".join((REPOSITORY / "ops" / "Dockerfile").read_text().replace("\\\n", " ").split())
    assert 'HEALTHCHECK' in text and 'CMD ["python", "-m", "streamer.health", "live"]' in text
    assert _dockerfile_environment()["STREAMER_METRICS_PORT"] == "9100"
    assert probe_main(["live", "1"]) == 1, "no daemon on port 1: the probe fails"
