"""The served path under the protocol: the real daemon learns through Kafka, the models read Redis.

:class:`ServedPath` owns (or borrows) a broker + redis-server and runs ``python -m streamer run`` as a
child process on a fresh one-partition topic — one partition keeps the total order, so the daemon learns
exactly the events, in exactly the order, that the in-process adapters learn. ``learn(events)``
produces them, waits until the daemon's committed offsets equal the produced count (offsets are
committed only after the vectors they changed are flushed to Redis), then waits until the daemon's
neighbour refresh has gone quiet (no ``ZADD``/``DEL`` on the server for a quiet period, so every
neighbour list due after the last event has been rewritten from the final model).

Two protocol models read it back:

- ``streamer-cosine@kafka``: every published vector (``SCAN {ns}:item:*`` + :meth:`Lookup.vectors`),
  ranked with :func:`rank_by_cosine` — the served counterpart of "streamer-cosine";
- ``streamer@kafka``: the published neighbour lists (:meth:`Lookup.similar`) — the served counterpart of
  "streamer" (``Trainer.most_similar``). The daemon rewrites the list of an item whose vector changed;
  an item untouched since its last refresh keeps the list computed then, so this path measures the lists
  services really read, not a fresh ``most_similar`` over the final model.

With ``catalog=True`` the daemon also reads a catalog topic: :meth:`ServedPath.catalog` produces a chunk's upserts
there and waits until they are committed before the chunk's events are produced (the catalog protocol's order).

Both share one daemon, so :func:`evaluate_in_step` scores every slice for all of them before the one
``learn`` of the slice (running :func:`streamer.evaluation.protocol.evaluate` per model would make the
second model query a daemon that had already learned the future).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from streamer.errors import StreamerError
from streamer.evaluation.protocol import Event, ModelResult, ProgressCallback, Split, rank_by_cosine, score_slice

__all__ = ["ServedCosineModel", "ServedNeighboursModel", "ServedPath", "ServedPathError", "evaluate_in_step"]

# Test-friendly daemon cadence: commits, flushes and neighbour refreshes every fraction of a second.
DAEMON_FLAGS = {
    "checkpoint_interval": 0.25, "flush_interval": 0.02, "neighbours_interval": 0.02, "neighbours_batch": 1_000_000,
    "status_interval": 0.25, "session_timeout_ms": 6000, "heartbeat_interval_ms": 2000, "user_ttl": 0,
    "catalog_topic": "", "lease_ttl": 5,
}


# How long the server must see no neighbour-list write before a slice is queried. 0.5 s was too short once the
# daemon's neighbour refresh started pausing (neighbour-index work between write rounds): measured on diginetica,
# the first slice's 143 queries found 0 hits right after the wait (in process: 4), 4 with a 3 s wait.
QUIET_SECONDS = 3.0


class ServedPathError(StreamerError):
    """The daemon exited, or did not catch up in time."""


class ServedPath:
    """A daemon fed through Kafka, read back through Redis. ``start()``/``close()`` or a ``with`` block.

    Without ``bootstrap_servers``/``redis_url`` it starts its own :class:`streamer.localstack.LocalStack`.
    Topic, group, namespace and checkpoint directory are fresh per instance; everything started is stopped.
    """

    def __init__(self, seed: int = 1, bootstrap_servers: str | None = None, redis_url: str | None = None,
                 workdir: str | Path | None = None, timeout: float = 300.0, quiet_seconds: float = QUIET_SECONDS,
                 engine_knobs: dict | None = None, catalog: bool = False):
        if (bootstrap_servers is None) != (redis_url is None):
            raise ServedPathError("give both bootstrap_servers and redis_url, or neither (own local stack)")
        self.seed, self.timeout, self.quiet_seconds = seed, timeout, quiet_seconds
        self.engine_knobs = dict(engine_knobs or {})
        self.bootstrap_servers, self.redis_url = bootstrap_servers, redis_url
        self.own_workdir = workdir is None  # a temporary folder: removed by close() unless the daemon failed
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="streamer-served-"))
        name = f"eval{uuid.uuid4().hex[:10]}"
        self.topic, self.group, self.namespace = name, f"{name}-group", name
        self.catalog_topic = f"{name}-catalog" if catalog else ""
        self.catalog_produced = 0
        self.log_path = self.workdir / "daemon.log"
        self.produced = 0
        self.first_seen: dict[str, int] = {}  # item -> first-seen position (the engine's allocation order)
        self.stack = self.daemon = self.lookup = self._redis = self._offsets = None
        from streamer.localstack import free_port

        self.metrics_port = free_port()  # the daemon's gauges: replay debt and lists due (_wait_for_settled)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> "ServedPath":
        from streamer.replay import ensure_topic

        try:
            if self.bootstrap_servers is None:
                from streamer.localstack import LocalStack

                self.stack = LocalStack(log_dir=self.workdir / "stack").start()
                self.bootstrap_servers, self.redis_url = self.stack.bootstrap_servers, self.stack.redis_url
            ensure_topic(self.bootstrap_servers, self.topic, 1)
            if self.catalog_topic:
                ensure_topic(self.bootstrap_servers, self.catalog_topic, 1)
            self.daemon = self._spawn_daemon()
            self._connect()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def _spawn_daemon(self) -> subprocess.Popen:
        flags = {**DAEMON_FLAGS, "bootstrap_servers": self.bootstrap_servers, "redis_url": self.redis_url,
                 "topic": self.topic, "group": self.group, "namespace": self.namespace,
                 "checkpoint_dir": self.workdir / "checkpoint", "seed": self.seed, **self.engine_knobs,
                 "catalog_topic": self.catalog_topic, "metrics_port": self.metrics_port}
        command = [sys.executable, "-m", "streamer", "run"]
        for name, value in flags.items():
            command.extend(["--" + name.replace("_", "-"), str(value)])
        from streamer.localstack import spawn_child

        return spawn_child(command, self.log_path)

    def _connect(self) -> None:
        import redis
        from kafka import KafkaConsumer

        from streamer.lookup import Lookup

        self._redis = redis.Redis.from_url(self.redis_url, decode_responses=False)
        self.lookup = Lookup(client=self._redis, namespace=self.namespace)
        # Reads the group's committed offsets; never subscribes, so it never joins the group.
        self._offsets = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=self.group,
                                      enable_auto_commit=False)

    def close(self, failed: bool = False) -> int | None:
        """Stop the daemon (SIGTERM, then kill), the clients and the stack this instance started; remove its
        temporary folder unless ``failed`` or the daemon did not exit 0 (then say where it is kept)."""
        from streamer.localstack import stop_process

        code = None if self.daemon is None else stop_process(self.daemon, timeout=60)
        for closer in (self._offsets, self._redis):
            if closer is not None:
                closer.close()
        if self.stack is not None:
            self.stack.stop()
        self.daemon = self._offsets = self._redis = self.stack = None
        if self.own_workdir and self.workdir.exists():
            if code in (0, None) and not failed:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                print(f"served path: the daemon's log and checkpoint are kept in {self.workdir}", file=sys.stderr)
        return code

    def __enter__(self) -> "ServedPath":
        return self.start()

    def __exit__(self, exc_type, *_) -> None:
        self.close(failed=exc_type is not None and not issubclass(exc_type, KeyboardInterrupt))

    # -- learning ---------------------------------------------------------------------------------
    def learn(self, events: list[Event]) -> None:
        """Produce ``events`` in order, then wait for the commit and for the neighbour refresh to settle."""
        from streamer.replay import produce_events

        for _, item, _ in events:
            self.first_seen.setdefault(item, len(self.first_seen))
        stats = produce_events(self.bootstrap_servers, self.topic, events)
        self.produced += stats.messages
        self._wait_for_commit()
        self._wait_for_settled()
        self._wait_for_quiet_neighbours()

    def catalog(self, updates: list[dict]) -> None:
        """Produce catalog upserts to the catalog topic (keyed by item), then wait until they are committed."""
        import orjson
        from kafka import KafkaProducer

        if not self.catalog_topic:
            raise ServedPathError("this served path was started without a catalog topic")
        producer = KafkaProducer(bootstrap_servers=self.bootstrap_servers)
        try:
            for update in updates:
                producer.send(self.catalog_topic, key=update["item"].encode(), value=orjson.dumps(update))
            producer.flush()
        finally:
            producer.close()
        self.catalog_produced += len(updates)
        self._wait_for_commit(self.catalog_topic, lambda: self.catalog_produced)

    def _check_alive(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            code = None if self.daemon is None else self.daemon.returncode
            raise ServedPathError(f"the daemon is not running (exit code {code}); see {self.log_path}")

    def committed(self, topic: str | None = None) -> int:
        from streamer.io.kafka_source import committed_total

        return committed_total(self._offsets, topic or self.topic)

    def _wait_for_commit(self, topic: str | None = None, produced=None) -> None:
        produced = produced or (lambda: self.produced)
        deadline = time.monotonic() + self.timeout
        while self.committed(topic) < produced():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ServedPathError(f"the daemon committed {self.committed(topic)}/{produced()} offsets "
                                      f"within {self.timeout:.0f} s; see {self.log_path}")
            time.sleep(0.05)

    def _gauges(self) -> dict[str, float]:
        """The daemon's Prometheus gauges (its ``--metrics-port``), by name."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        return {name: float(value) for name, value in
                (line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
                if "{" not in name}

    def _wait_for_settled(self) -> None:
        """Wait until the daemon owes no replay and has no list due, as its status says after the commit: a
        daemon paying replay debt in spare time takes what the replay moved only every few seconds, so until
        then its lists are those of the model before the replay (in process, ``learn`` replays inline)."""
        deadline = time.monotonic() + self.timeout
        time.sleep(2 * DAEMON_FLAGS["status_interval"])  # a status written after the commit
        while True:
            self._check_alive()
            gauges = self._gauges()
            if gauges.get("streamer_replay_debt", 0.0) == 0 and gauges.get("streamer_neighbours_due", 0.0) == 0:
                return
            if time.monotonic() > deadline:
                raise ServedPathError(f"the daemon still owed {gauges.get('streamer_replay_debt', 0.0):.0f} replay draws "
                                      f"and had {gauges.get('streamer_neighbours_due', 0.0):.0f} lists due after "
                                      f"{self.timeout:.0f} s; see {self.log_path}")
            time.sleep(0.05)

    def _neighbour_writes(self) -> int:
        stats = self._redis.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("zadd", "del"))

    def _wait_for_quiet_neighbours(self) -> None:
        """Wait until no neighbour list has been written for ``quiet_seconds`` (bounded by ``timeout``)."""
        deadline = time.monotonic() + self.timeout
        writes, since = self._neighbour_writes(), time.monotonic()
        while time.monotonic() - since < self.quiet_seconds:
            self._check_alive()
            if time.monotonic() > deadline:
                raise ServedPathError(f"neighbour lists still being written after {self.timeout:.0f} s")
            time.sleep(0.05)
            now = self._neighbour_writes()
            if now != writes:
                writes, since = now, time.monotonic()

    # -- reading ----------------------------------------------------------------------------------
    def published_items(self) -> list[str]:
        """Every item with a published vector, in the engine's first-seen order (others after, sorted)."""
        prefix = self.lookup.keys.item_prefix
        found = [key.decode()[len(prefix):] for key in self._redis.scan_iter(match=f"{prefix}*", count=10_000)]
        late = len(self.first_seen)
        return sorted(found, key=lambda item: (self.first_seen.get(item, late), item))


class _ServedModel:
    """A protocol model reading one :class:`ServedPath`; learning goes through the path's daemon."""

    def __init__(self, path: ServedPath):
        self.path = path

    def learn(self, events: list[Event]) -> None:
        self.path.learn(events)

    @property
    def name(self) -> str:
        return self.base_name + ("+catalog" if self.path.catalog_topic else "")


class ServedCosineModel(_ServedModel):
    """``streamer-cosine@kafka``: cosine ranking over every vector read back from Redis."""

    base_name = "streamer-cosine@kafka"

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]:
        import numpy as np

        items = self.path.published_items()
        read = self.path.lookup.vectors(items)
        kept = [(item, vector) for item, vector in zip(items, read) if vector is not None]
        if not kept:
            return [None] * len(query_items)
        return rank_by_cosine([item for item, _ in kept], np.stack([vector for _, vector in kept]), query_items, k)


class ServedNeighboursModel(_ServedModel):
    """``streamer@kafka``: the published neighbour lists; a query item without a vector is a miss."""

    base_name = "streamer@kafka"

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]:
        lookup = self.path.lookup
        present = lookup.vectors(query_items)
        return [None if vector is None else [item for item, _ in lookup.similar(query, k + 1) if item != query][:k]
                for query, vector in zip(query_items, present)]


def evaluate_in_step(models: list, split: Split, k: int = 10, progress: ProgressCallback | None = None,
                     learn=None, upserts: list[list[dict]] | None = None, catalog=None) -> list[ModelResult]:
    """The protocol for models sharing one learner: per slice, score every model, then ``learn`` once.

    ``learn`` defaults to the first model's; each result gets the shared learn time. With ``upserts``
    (:func:`streamer.evaluation.protocol.catalog_upserts`), ``catalog`` (default: the first model's path's) takes
    each chunk's upserts before the chunk is learned.
    """
    learn = learn or models[0].learn
    if upserts is not None:
        catalog = catalog or models[0].path.catalog
    results = [ModelResult(name=model.name, k=k) for model in models]
    started = time.perf_counter()
    if upserts is not None and upserts[0]:
        catalog(upserts[0])
    if split.warmup:
        learn(split.warmup)
    for result in results:
        result.warmup_learn_seconds = time.perf_counter() - started
    for index, (events, queries) in enumerate(zip(split.slices, split.queries)):
        chunks = [score_slice(model, queries, k) for model in models]
        started = time.perf_counter()
        if upserts is not None and upserts[index + 1]:
            catalog(upserts[index + 1])
        if events:
            learn(events)
        elapsed = time.perf_counter() - started
        for model, result, chunk in zip(models, results, chunks):
            chunk.learn_seconds = elapsed
            result.slices.append(chunk)
            if progress is not None:
                progress(model.name, index, len(split.slices), chunk)
    return results
