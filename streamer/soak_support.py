"""The parts of ``streamer soak`` (:mod:`streamer.soak`): a producer that remembers what it sent, the
daemon as a process, and the audit of its checkpoint and of Redis."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streamer.errors import CheckpointError
from streamer.io.manifest import MANIFEST, read_manifest
from streamer.keys import Keys

__all__ = ["Auditor", "DaemonProcess", "Producer", "create_topics", "process_running"]

# Tansu creates a missing topic with 4 partitions when a client asks for its metadata; after a broker
# restart the daemon's consumer may do so before the soak does, so the soak's topics have 4 as well.
PARTITIONS = 4
NAMESPACE = "soak"
USERS, ITEMS = 60, 400
EVENT_SPACING = 0.001  # seconds of event time between produced events (partitions stay within lateness)


def create_topics(bootstrap: str, *names: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streamer-soak")
    try:
        for name in names:
            try:
                admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def _bad_messages(rng, count: int, oversized: bool) -> list[bytes]:
    kinds = [b"not json {", b'{"user": "u1"}', b'{"user": 5, "item": [], "ts": "yesterday"}',
             b'[{"user": "u1", "item": "item-1", "ts": "x"}, {"user": "u2"}]']
    messages = [kind for kind in kinds for _ in range(count)]
    if oversized:
        messages.append(b"x" * 900_000)  # over kafka-python's request limit once wrapped in a dead letter
        messages.append(orjson.dumps({"user": "u1", "item": "i" * 800_000, "ts": time.time()}))
    rng.shuffle(messages)
    return messages


class Producer:
    """Sends rounds of events; ``counts`` holds the good events the broker acknowledged, per item."""

    def __init__(self, stack, topic: str, rng):
        self._stack, self._topic, self._rng = stack, topic, rng
        self.counts: collections.Counter = collections.Counter()
        self.produced = self.bad = 0
        self._base_ts = time.time() - 3600.0
        self._producer = self._connect()

    def _connect(self) -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=self._stack.bootstrap_servers, acks="all", linger_ms=5,
                             max_request_size=2_000_000, retries=5)

    def reconnect(self) -> None:
        self._producer.close()
        self._producer = self._connect()

    def produce_round(self, events: int, bad_per_kind: int, oversized: bool) -> None:
        rng, sent = self._rng, []
        bad = _bad_messages(rng, bad_per_kind, oversized)
        slots = set(rng.sample(range(events + len(bad)), len(bad)))
        for position in range(events + len(bad)):
            if position in slots:
                sent.append((self._producer.send(self._topic, key=b"bad", value=bad.pop()), None))
                continue
            user, item = f"u{rng.randrange(USERS)}", f"item-{min(ITEMS - 1, int(rng.paretovariate(1.1)) - 1)}"
            ts = self._base_ts + (self.produced + len(sent)) * EVENT_SPACING
            value = orjson.dumps({"user": user, "item": item, "ts": ts})
            sent.append((self._producer.send(self._topic, key=user.encode(), value=value), item))
        self._producer.flush(60)
        for future, item in sent:
            try:
                future.get(timeout=60)
            except KafkaError:
                continue  # not acknowledged: not produced
            if item is None:
                self.bad += 1
            else:
                self.counts[item] += 1
                self.produced += 1

    def close(self) -> None:
        self._producer.close()


class DaemonProcess:
    """``python -m streamer run`` against the stack, logging to ``workdir/daemon.log``."""

    def __init__(self, stack, topic: str, workdir: Path):
        self._stack, self._topic, self._workdir = stack, topic, workdir
        self.log = workdir / "daemon.log"
        self.process: subprocess.Popen | None = None

    def _command(self) -> list[str]:
        flags = dict(bootstrap_servers=self._stack.bootstrap_servers, redis_url=self._stack.redis_url,
                     topic=self._topic, catalog_topic=f"{self._topic}-catalog", group="soak-group",
                     namespace=NAMESPACE, checkpoint_dir=self._workdir / "state", checkpoint_interval=1.0,
                     lease_ttl=3.0, session_timeout_ms=3000, heartbeat_interval_ms=1000, status_interval=5.0,
                     vector_size=16)
        command = [sys.executable, "-m", "streamer", "run"]
        for name, value in flags.items():
            command += ["--" + name.replace("_", "-"), str(value)]
        return command

    def start(self) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("STREAMER_")}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=environment)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
            self._wait_for_fetchers()

    def term(self) -> int:
        """SIGTERM at whatever moment the daemon is in (start-up included: ``python -m streamer run`` keeps a
        stop signal from its first line on, issue 16 item 9)."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(90)
        self._wait_for_fetchers()
        return code

    def _wait_for_fetchers(self, timeout: float = 30.0) -> None:
        """An orphaned fetch process leaves the group and exits once it sees its daemon's pipe close."""
        pids = [int(pid) for pid in re.findall(rb"fetcher_started pid=(\d+)", self.log.read_bytes())]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(process_running(pid) for pid in pids):
            time.sleep(0.1)


def process_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent to reap it has finished)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Auditor:
    """Reads the daemon's checkpoint and Redis."""

    def __init__(self, state: Path, stack, daemon: DaemonProcess):
        self._state, self._stack, self._daemon = state, stack, daemon

    def learned(self) -> int | None:
        """The event count of the newest checkpoint (None before the first)."""
        try:
            return read_manifest(self._state / MANIFEST).event_count
        except (FileNotFoundError, CheckpointError, ValueError):
            return None

    def wait_started(self, timeout: float) -> bool:
        """Wait for the daemon's first checkpoint (written once it has compiled and subscribed)."""
        return self._wait(lambda: self.learned() is not None, timeout)

    def wait_learned(self, produced: int, timeout: float) -> bool:
        return self._wait(lambda: self.learned() == produced, timeout)

    def _wait(self, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            if not self._daemon.running():  # it ended on its own: start it again (the log says why)
                self._daemon.start()
            time.sleep(0.25)
        return False

    def items_in_redis(self) -> set[str]:
        import redis

        client = redis.Redis.from_url(self._stack.redis_url)
        keys = Keys(NAMESPACE)
        try:
            return {keys.item_id(name) for name in client.scan_iter(match=f"{keys.item_prefix}*", count=5000)
                    if client.hexists(name, "vec")}
        finally:
            client.close()

    def wait_published(self, items: set[str], timeout: float) -> set[str]:
        """The items still missing in Redis after at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        missing = items - self.items_in_redis()
        while missing and time.monotonic() < deadline:
            time.sleep(0.5)
            missing = items - self.items_in_redis()
        return missing

    def finish(self, producer: Producer, timeout: float, result) -> None:
        """Wait for the daemon to catch up and publish, stop it, and compare its state with what was produced."""
        from streamer.core.trainer import Trainer
        from streamer.io.state_store import CheckpointStore

        result.produced, result.bad_messages = producer.produced, producer.bad
        result.items_produced = len(producer.counts)
        if not self.wait_learned(producer.produced, timeout):
            result.problems.append(f"the checkpoint holds {self.learned()} events, {producer.produced} were produced")
        missing = self.wait_published(set(producer.counts), timeout)
        result.items_missing_in_redis = len(missing)
        if missing:
            result.problems.append(f"{len(missing)} items not in Redis, e.g. {sorted(missing)[:3]}")
        result.final_exit_code = self._daemon.term()
        if result.final_exit_code != 0:
            result.problems.append(f"the final SIGTERM ended the daemon with exit code {result.final_exit_code}")
        engine, _ = CheckpointStore(self._state).load(Trainer.load)
        result.learned = engine.event_count if engine is not None else None
        if result.learned != producer.produced:
            result.problems.append(f"the final state learned {result.learned} events, {producer.produced} were produced")
        counts = engine.item_counts() if engine is not None else {}
        wrong = [item for item in set(producer.counts) | set(counts) if counts.get(item, 0) != producer.counts[item]]
        result.items_miscounted = len(wrong)
        if wrong:
            result.problems.append(f"{len(wrong)} items counted differently from produced, e.g. {sorted(wrong)[:3]}")
