"""Replay interaction rows to Kafka as JSON events, keyed by user, in the order given, optionally paced.

The pure part — event encoding, the send schedule, the pacing loop with an injected clock — sits on top;
:func:`produce_events` is the thin Kafka shell that the ``streamer replay`` command, the demo, the daemon
tests and the benchmarks call.

>>> encode_event("42", "1029", 1260759179.0)
b'{"user":"42","item":"1029","ts":1260759179.0}'
>>> list(send_schedule([10.0, 10.0, 30.0, 31.0], rate=1.0, speedup=10.0))
[0.0, 1.0, 2.0, 3.0]
>>> list(send_schedule([10.0, 10.0, 30.0, 70.0], rate=1.0, speedup=10.0))
[0.0, 1.0, 2.0, 6.0]
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import orjson

from streamer.errors import StreamerError

__all__ = [
    "Progress",
    "ReplayError",
    "ReplayStats",
    "encode_event",
    "ensure_topic",
    "format_progress",
    "produce_events",
    "replay_rows",
    "send_schedule",
]

Row = tuple[str, str, float]


class ReplayError(StreamerError):
    """The broker was unreachable, the topic unusable, or messages were not acknowledged."""


@dataclass(frozen=True)
class Progress:
    """How far a replay has got: ``done`` of ``total`` (None when unknown) after ``elapsed_seconds``."""

    done: int
    total: int | None
    elapsed_seconds: float

    @property
    def events_per_second(self) -> float:
        return self.done / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.total is None or self.done == 0:
            return None
        return max(self.total - self.done, 0) / self.events_per_second


@dataclass(frozen=True)
class ReplayStats:
    """The outcome of a replay: messages sent (and acknowledged, for :func:`produce_events`) and the time taken."""

    messages: int
    seconds: float

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def encode_event(user: str, item: str, ts: float) -> bytes:
    """The wire format: ``{"user": str, "item": str, "ts": unix seconds float}`` as compact JSON."""
    return orjson.dumps({"user": user, "item": item, "ts": float(ts)})


def send_schedule(timestamps: Iterable[float], rate: float = 0.0, speedup: float = 0.0) -> Iterator[float]:
    """Earliest send time of each event, in seconds after the first one.

    ``rate`` (events/s) keeps consecutive sends at least ``1/rate`` apart; ``speedup`` keeps each event at
    least ``(ts - first ts) / speedup`` after the start. Both are lower bounds, so the stricter one wins
    for every event; 0 disables a bound. The schedule is absolute, so a late send does not shift the rest.
    """
    if rate < 0 or speedup < 0:
        raise ValueError("rate and speedup must be >= 0")
    gap = 1.0 / rate if rate > 0 else 0.0
    first_ts = None
    previous = None
    for ts in timestamps:
        if first_ts is None:
            first_ts = ts
        due = (ts - first_ts) / speedup if speedup > 0 else 0.0
        if previous is not None:
            due = max(due, previous + gap)
        previous = max(due, 0.0)
        yield previous


def format_progress(progress: Progress) -> str:
    """``done/total (percent) events/s ETA`` as one line for stderr."""
    if progress.total:
        share = f"{progress.done:,}/{progress.total:,} ({100.0 * progress.done / progress.total:.0f}%)"
    else:
        share = f"{progress.done:,}"
    eta = progress.eta_seconds
    eta_text = f", ETA {eta:.0f} s" if eta is not None else ""
    return f"replay: {share}, {progress.events_per_second:,.0f} events/s, {progress.elapsed_seconds:.1f} s{eta_text}"


def replay_rows(
    rows: Iterable[Row],
    send: Callable[[bytes, bytes], object],
    rate: float = 0.0,
    speedup: float = 0.0,
    limit: int | None = None,
    progress: Callable[[Progress], object] | None = None,
    progress_interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> ReplayStats:
    """Call ``send(key, value)`` for each row (key = user) in order, paced by ``rate``/``speedup``.

    ``progress`` is called about every ``progress_interval`` seconds while running (not at the end).
    """
    total = len(rows) if isinstance(rows, Sequence) else None
    if limit is not None:
        rows = itertools.islice(rows, limit)
        total = min(total, limit) if total is not None else None
    rows = iter(rows)
    paced = rate > 0 or speedup > 0
    if paced:
        rows, for_schedule = itertools.tee(rows)
        schedule = send_schedule((row[2] for row in for_schedule), rate, speedup)
    start = clock()
    next_report = start + progress_interval
    done = 0
    for user, item, ts in rows:
        if paced:
            wait = start + next(schedule) - clock()
            if wait > 0:
                sleep(wait)
        send(user.encode(), encode_event(user, item, ts))
        done += 1
        if progress is not None and clock() >= next_report:
            now = clock()
            progress(Progress(done, total, now - start))
            next_report = now + progress_interval
    return ReplayStats(done, clock() - start)


def _kafka_error(error: Exception, bootstrap_servers: str, topic: str) -> ReplayError:
    text = str(error) or type(error).__name__
    if "bootstrap" in text.lower() or type(error).__name__ == "NoBrokersAvailable":
        return ReplayError(f"cannot reach Kafka at {bootstrap_servers}: {text}")
    hint = " (does the topic exist? --partitions N creates it)" if "metadata" in text.lower() else ""
    return ReplayError(f"producing to topic {topic!r} on {bootstrap_servers} failed: {text}{hint}")


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int, connect_timeout: float = 10.0,
                 client_config: dict | None = None) -> bool:
    """Create ``topic`` with ``partitions`` partitions unless it exists; True when it was created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="streamer-replay",
                                 bootstrap_timeout_ms=int(connect_timeout * 1000), **(client_config or {}))
    except KafkaError as error:
        raise _kafka_error(error, bootstrap_servers, topic) from None
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        return True
    except TopicAlreadyExistsError:
        return False
    except KafkaError as error:
        raise _kafka_error(error, bootstrap_servers, topic) from None
    finally:
        admin.close()


# Batching for throughput, idempotence + acks=all for durability and per-key order under retries.
PRODUCER_DEFAULTS = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "max_block_ms": 15000,
}


def _open_producer(bootstrap_servers: str, topic: str, connect_timeout: float, extra: dict):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(bootstrap_servers=bootstrap_servers, client_id="streamer-replay",
                             bootstrap_timeout_ms=int(connect_timeout * 1000), **{**PRODUCER_DEFAULTS, **extra})
    except KafkaError as error:
        raise _kafka_error(error, bootstrap_servers, topic) from None


def _close_producer(producer, clean: bool) -> None:
    """Close the producer; after a failure or an interrupt, drop what is unsent without raising over it."""
    from kafka.errors import KafkaError

    try:
        producer.close(timeout=10 if clean else 0)
    except KafkaError:  # close(timeout=0) raises KafkaTimeoutError for unsent messages
        if clean:
            raise


def produce_events(
    bootstrap_servers: str,
    topic: str,
    rows: Iterable[Row],
    rate: float = 0.0,
    speedup: float = 0.0,
    limit: int | None = None,
    progress: Callable[[Progress], object] | None = None,
    partitions: int | None = None,
    connect_timeout: float = 10.0,
    producer_config: dict | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> ReplayStats:
    """Produce ``rows`` ``(user, item, ts)`` to ``topic`` as JSON events keyed by user, in the given order.

    Pass rows sorted by ts (as :func:`streamer.datasets.load_events` returns them). With ``partitions`` the
    topic is created first when missing. Returns after every message is acknowledged (``flush``); the
    stats' time includes that flush. Raises :class:`ReplayError` when the broker is unreachable or a
    message is not acknowledged.
    """
    from kafka.errors import KafkaError

    extra = dict(producer_config or {})
    if partitions:
        security = {key: value for key, value in extra.items() if key.startswith(("security_", "sasl_", "ssl_"))}
        ensure_topic(bootstrap_servers, topic, partitions, connect_timeout, security)
    producer = _open_producer(bootstrap_servers, topic, connect_timeout, extra)
    failures: list[Exception] = []
    clean = False
    try:
        def send(key: bytes, value: bytes) -> None:
            if failures:
                raise failures[0]
            producer.send(topic, key=key, value=value).add_errback(failures.append)

        start = clock()
        stats = replay_rows(rows, send, rate, speedup, limit, progress, clock=clock, sleep=sleep)
        producer.flush()
        if failures:
            raise failures[0]
        clean = True
        return ReplayStats(stats.messages, clock() - start)
    except KafkaError as error:
        raise _kafka_error(error, bootstrap_servers, topic) from None
    finally:
        _close_producer(producer, clean)
