"""Shared fixtures: the real local stack (Tansu broker + redis-server) for integration tests.

Session-scoped servers on random free loopback ports, started once and stopped at the end (also when
tests fail or are interrupted); every test gets its own topic names and Redis key namespace.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # as the streamer command does
    os.environ.setdefault(_variable, "1")  # (streamer/cli.py): in-process daemons run the same as spawned ones
os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as streamer/cli.py sets it (numba's threads sleep when idle)

import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from streamer.datasets import default_data_root  # noqa: E402
from streamer.localstack import LocalStack  # noqa: E402

# Tansu quirks: the first group join waits about half the session timeout; keep it short in tests.
CONSUMER_TEST_SETTINGS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000}


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    stack = LocalStack(log_dir=tmp_path_factory.mktemp("stack-logs"))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_stack) -> str:
    return local_stack.bootstrap_servers


@pytest.fixture(scope="session")
def redis_url(local_stack) -> str:
    return local_stack.redis_url


@pytest.fixture
def unique_name(request) -> str:
    """A short name unique to this test, usable as a topic, group or Redis namespace."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_topic(kafka_bootstrap):
    """``make_topic(partitions=1) -> name``: creates a fresh topic on the test broker."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="streamer-tests")

    def create(partitions: int = 1, name: str | None = None) -> str:
        topic = name or f"topic-{uuid.uuid4().hex[:10]}"
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        return topic

    yield create
    admin.close()


@pytest.fixture
def redis_client(redis_url, unique_name):
    """A client on the test Redis; the keys under this test's namespace are deleted afterwards."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(match=f"{unique_name}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = default_data_root()
    if not root.is_dir():
        pytest.fail(f"shared data sets not found at {root}; set STREAMER_DATA_ROOT")
    return root
