"""Helpers for the daemon's integration tests: run it in a thread or as a process, produce, wait, read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
from kafka import KafkaProducer

from streamer.app import Daemon
from streamer.config import load_settings
from streamer.keys import Keys, decode_vector

# Tansu: a group join waits about half the session timeout and a dead member leaves after it;
# short values keep restarts quick (heartbeats run on kafka-python's IO thread).
FAST_GROUP = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 1000}
REPOSITORY = Path(__file__).resolve().parents[2]
SPAWNED: list[subprocess.Popen] = []  # every daemon process a test started (stop_leftovers ends what is still up)


def settings_for(kafka_bootstrap: str, redis_url: str, namespace: str, topic: str, checkpoint_dir: Path, **overrides):
    values = dict(bootstrap_servers=kafka_bootstrap, redis_url=redis_url, namespace=namespace, topic=topic,
                  catalog_topic=f"{topic}-catalog", group=f"{namespace}-group", checkpoint_dir=str(checkpoint_dir),
                  checkpoint_interval=1.0, status_interval=2.0, lease_ttl=3.0, neighbours_interval=0.5,
                  shutdown_timeout=30.0, **FAST_GROUP)
    values.update(overrides)
    return load_settings(flags=values, environ={})


class DaemonThread:
    """``with DaemonThread(settings) as daemon:`` — the real daemon in a thread, stopped gracefully on exit."""

    def __init__(self, settings):
        self.daemon = Daemon(settings)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="daemon", daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code = self.daemon.run()
        except BaseException as error:  # surfaced by the test through .error
            self.error = error
            raise

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> "DaemonThread":
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self.daemon.request_stop(watchdog=False)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "daemon did not stop"

    def __exit__(self, *exc_info) -> None:
        if self._thread.is_alive():
            self.stop()


def spawn_daemon(settings_flags: dict, log_path: Path) -> subprocess.Popen:
    """``python -m streamer run --flag value ...`` as a child process, logging to ``log_path``."""
    command = [sys.executable, "-m", "streamer", "run"]
    for name, value in settings_flags.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            command.append(flag if value else "--no-" + flag[2:])
        else:
            command.extend([flag, str(value)])
    log = open(log_path, "ab")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STREAMER_")}
    environment["STREAMER_DATA_ROOT"] = os.environ.get("STREAMER_DATA_ROOT", "")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY, env=environment)
    log.close()
    SPAWNED.append(process)
    return process


def stop_leftovers(grace: float = 10.0) -> list[int]:
    """End every spawned daemon still running (a test that failed half-way left it): SIGTERM, then SIGKILL
    after ``grace`` seconds. Returns the pids that had to be stopped."""
    running = [process for process in SPAWNED if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
    SPAWNED.clear()
    return [process.pid for process in running]


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout)


def event_value(user: str, item: str, ts: float) -> bytes:
    return orjson.dumps({"user": user, "item": item, "ts": ts})


def produce(kafka_bootstrap: str, topic: str, messages, rate: float | None = None) -> Counter:
    """Send ``(key, value)`` pairs in order (optionally at ``rate`` per second); returns messages per partition."""
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, acks="all")
    futures, began = [], time.monotonic()
    for index, (key, value) in enumerate(messages):
        futures.append(producer.send(topic, key=key, value=value))
        if rate and index % 100 == 99:
            ahead = (index + 1) / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush()
    per_partition = Counter(future.get(timeout=30).partition for future in futures)
    producer.close()
    return per_partition


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll until ``predicate()`` is truthy; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def read_manifest(checkpoint_dir: Path) -> dict | None:
    path = Path(checkpoint_dir) / "manifest.json"
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def manifest_offsets(checkpoint_dir: Path) -> dict[tuple[str, int], int]:
    manifest = read_manifest(checkpoint_dir) or {"offsets": []}
    return {(topic, partition): offset for topic, partition, offset in manifest["offsets"]}


def read_item_vectors(client, namespace: str) -> dict:
    """Every ``{ns}:item:*`` hash's vector, by item id."""
    keys = Keys(namespace)
    names = list(client.scan_iter(match=f"{keys.item_prefix}*", count=5000))
    pipeline = client.pipeline(transaction=False)
    for name in names:
        pipeline.hget(name, "vec")
    return {keys.item_id(name): decode_vector(value) for name, value in zip(names, pipeline.execute())
            if value is not None}


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60.0, settle: float = 0.0) -> list:
    """Every record of ``topic`` from its start: until ``expected`` arrived (then ``settle`` seconds more, to
    see any extra ones) or ``timeout``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)
    partitions = consumer.partitions_for_topic(topic) or {0}  # an auto-created topic may have several
    consumer.assign([TopicPartition(topic, partition) for partition in sorted(partitions)])
    consumer.seek_to_beginning()
    records, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
        if len(records) >= expected:
            deadline = min(deadline, time.monotonic() + settle)
            if not settle:
                break
    consumer.close()
    return records


class OwnRedis:
    """A redis-server of the test's own on a random free port (never the session's shared one), for tests
    that restart, stop (SIGSTOP) or kill it; ``with OwnRedis(log_path) as server:`` stops it at the end."""

    def __init__(self, log_path: Path):
        from streamer.localstack import LOOPBACK, free_port

        self.log_path, self.host, self.port = log_path, LOOPBACK, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host=self.host, port=self.port, socket_timeout=10)

    def start(self) -> "OwnRedis":
        import redis

        from streamer.localstack import find_redis_server

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([find_redis_server(), "--port", str(self.port), "--bind", self.host,
                                             "--save", "", "--appendonly", "no"], stdout=log, stderr=subprocess.STDOUT)
        probe = redis.Redis(host=self.host, port=self.port, socket_timeout=2)

        def pings() -> bool:
            try:
                return bool(probe.ping())
            except redis.ConnectionError:
                return False

        wait_for(pings, 20, "redis-server to answer")
        probe.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.process.terminate()
            self.process.wait(20)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port: an empty server with a new run_id."""
        self.stop()
        self.start()

    def __enter__(self) -> "OwnRedis":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
