"""Daemon benchmark on the local stack (Tansu + redis-server), printed in one run:

1. raw kafka-python consume rate on this broker (poll loop, no processing);
2. the daemon's sustained end-to-end events/s on the same pre-filled topic (Kafka → learned → vectors
   flushed to Redis) and its ratio to (1) — target >= 0.9;
3. the processor time each spends per event (the daemon: its own process, where it learns, and its
   fetch process), and from it the cores the daemon would need to run at 0.9 of the raw rate;
4. the daemon's engine learning the same events alone (no Kafka, no Redis), the way the daemon learns a
   backlog (``max_poll_records`` batches, replay owed): the most the daemon could reach on one learner;
5. freshness p50/p99 (produce time → vector written to Redis) with a producer paced at 10,000 events/s —
   target p99 <= 1 s.

    python ops/bench_daemon.py [--events 200000] [--rate 10000] [--seconds 20] [--knob interleaved_passes=0]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from orjson import loads as orjson_loads  # noqa: E402

from streamer.app import Daemon  # noqa: E402
from streamer.benchmarks.report import compute_ratios  # noqa: E402
from streamer.config import ENGINE_KNOBS, load_settings  # noqa: E402
from streamer.core.trainer import Trainer  # noqa: E402
from streamer.core.warmup import warm_up  # noqa: E402
from streamer.datasets import load_events  # noqa: E402
from streamer.io.kafka_source import consumer_options  # noqa: E402
from streamer.keys import Keys  # noqa: E402
from streamer.localstack import LocalStack  # noqa: E402
from streamer.replay import encode_event  # noqa: E402


def _messages(count: int, live: bool = False):
    """yoochoose clicks, repeated with shifted times until ``count``; ``live``: ts = the wall clock."""
    rows = load_events("yoochoose")
    span = rows[-1][2] - rows[0][2] + 1.0
    produced, lap = 0, 0
    while produced < count:
        for user, item, ts in rows:
            if produced == count:
                return
            yield f"{lap}-{user}".encode(), encode_event(f"{lap}-{user}", item, time.time() if live else ts + lap * span)
            produced += 1
        lap += 1


def _fill(bootstrap: str, topic: str, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024, acks=1)
    for key, value in _messages(count):
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def _paced_producer(bootstrap: str, topic: str, rate: float, seconds: float) -> None:
    """Runs in its own process so it does not share the daemon's interpreter lock."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
    began = time.monotonic()
    for index, (key, value) in enumerate(_messages(int(rate * seconds), live=True)):
        producer.send(topic, key=key, value=value)
        if index % 50 == 49:
            ahead = (index + 1) / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush()
    producer.close()


PROC_RESOLUTION = 5 / os.sysconf("SC_CLK_TCK")  # fewer ticks than this is not a measure


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system processor seconds of process ``pid`` so far (Linux ``/proc``); None where unreadable."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_event(cpu_before: float | None, cpu_after: float | None, events: int, resolution: float = 0.0) -> float | None:
    """Processor seconds per event between two readings; None when either is missing or the difference is
    below ``resolution`` (``/proc`` counts clock ticks: a short run of a process that read ahead shows 0.00)."""
    if cpu_before is None or cpu_after is None or events <= 0 or cpu_after - cpu_before < resolution:
        return None
    return (cpu_after - cpu_before) / events


def raw_consume_rate(settings, topic: str, count: int) -> tuple[float, float]:
    """A bare poll loop with the daemon's own consumer options (assigned, so it never joins the group):
    events/s and processor seconds per event, both from the first batch on."""
    consumer = KafkaConsumer(**consumer_options(settings))
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    seen, began, first, cpu_began = 0, None, 0, 0.0
    while seen < count:
        for records in consumer.poll(timeout_ms=500).values():
            if began is None:  # time from the first batch on
                began, first, cpu_began = time.perf_counter(), len(records), time.process_time()
            seen += len(records)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    consumer.close()
    return (seen - first) / elapsed, cpu / (seen - first)


REPLAY_MODE = "spare"
KNOBS: dict[str, str] = {}  # engine knobs from --knob NAME=VALUE, read as STREAMER_<NAME> would be


def parse_knobs(pairs: list[str]) -> dict[str, str]:
    """``--knob NAME=VALUE`` arguments as ``{name: value}``; ValueError for a malformed pair or an unknown knob."""
    knobs = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise ValueError(f"--knob wants NAME=VALUE, got {pair!r}")
        name = name.strip().replace("-", "_")
        if name not in ENGINE_KNOBS:
            raise ValueError(f"--knob: {name!r} is not an engine knob (one of {', '.join(sorted(ENGINE_KNOBS))})")
        knobs[name] = value.strip()
    return knobs


def _settings(stack: LocalStack, topic: str, name: str, state: Path):
    return load_settings(flags=dict(replay_mode=REPLAY_MODE,
        bootstrap_servers=stack.bootstrap_servers, redis_url=stack.redis_url, topic=topic, catalog_topic="",
        group=f"{name}-group", namespace=name, checkpoint_dir=str(state / name), status_interval=5.0,
        session_timeout_ms=6000, heartbeat_interval_ms=2000, max_poll_records=5000),
        environ={f"STREAMER_{name.upper()}": value for name, value in KNOBS.items()})


def daemon_rate(stack: LocalStack, topic: str, count: int, state: Path) -> dict:
    """From the first event learned until Redis holds the vectors of every event: the ``{ns}:meta`` hash
    is written with the model version (events learned) in the same pipeline as the vectors changed up to
    then, so ``model_version == count`` marks the end (spare-time replay after it does not count).

    Returns ``events_per_second``, ``replayed_pairs`` (spare-time replay after the end) and the processor
    seconds per event over the same span of the daemon's own process (``learner_cpu_per_event``: the loop,
    learning, Redis writes; this benchmark's polling thread is in it too) and of its fetch process
    (``fetcher_cpu_per_event``; None with ``--fetcher inline`` or without ``/proc``)."""
    settings = _settings(stack, topic, "bench-throughput", state)
    daemon = Daemon(settings)
    client = redis.Redis.from_url(stack.redis_url)
    meta = Keys(settings.namespace).meta
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    began = first = fetcher = None
    while True:
        active = daemon.active
        learned = active.engine.event_count if active else 0
        if learned and began is None:
            began, first = time.perf_counter(), learned
            fetcher = getattr(active.source, "fetcher_pid", None)
            cpu_began = (time.process_time(), process_cpu_seconds(fetcher))
        if learned == count and int(client.hget(meta, "model_version") or 0) == count:
            elapsed = time.perf_counter() - began
            cpu_ended = (time.process_time(), process_cpu_seconds(fetcher))
            break
        time.sleep(0.005)
    time.sleep(1.0)  # let the idle daemon pay its replay debt, to report it
    replayed = daemon.active.replayed_pairs
    client.close()
    daemon.request_stop(watchdog=False)
    thread.join()
    return {"events_per_second": (count - first) / elapsed, "replayed_pairs": replayed,
            "learner_cpu_per_event": _per_event(cpu_began[0], cpu_ended[0], count - first),
            "fetcher_cpu_per_event": _per_event(cpu_began[1], cpu_ended[1], count - first, PROC_RESOLUTION)}


def learning_alone(settings, count: int) -> tuple[float, float]:
    """The benchmark's events learned by the daemon's engine alone: decoded before the clock starts, then
    ``max_poll_records`` at a time with the replay owed (``learn(..., replay=False)``), as the daemon learns a
    backlog. Events/s and processor seconds per event."""
    events = []
    for _, value in _messages(count):
        decoded = orjson_loads(value)
        events.append((decoded["user"], decoded["item"], float(decoded["ts"])))
    engine = Trainer(**settings.engine_knobs)
    warm_up(engine.settings)  # compiled first, as in the daemon
    began, cpu_began = time.perf_counter(), time.process_time()
    for start in range(0, count, settings.max_poll_records):
        engine.learn(events[start:start + settings.max_poll_records], replay=False)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return count / elapsed, cpu / count


def freshness(stack: LocalStack, topic: str, rate: float, seconds: float, state: Path) -> tuple:
    daemon = Daemon(_settings(stack, topic, "bench-freshness", state))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    while daemon.active is None or not daemon.active.source.assigned:
        time.sleep(0.05)
    time.sleep(1.0)
    producer = multiprocessing.get_context("spawn").Process(
        target=_paced_producer, args=(stack.bootstrap_servers, topic, rate, seconds))
    began = time.perf_counter()
    producer.start()
    time.sleep(2.0)  # warm-up: compile, first flushes
    daemon.metrics.clear_freshness_window()
    producer.join()
    produced_seconds = time.perf_counter() - began
    expected = int(rate * seconds)
    while (daemon.active.engine.event_count + daemon.active.dead_letters.count < expected
           or daemon.active.sink.pending):
        time.sleep(0.01)
    p50, p99 = daemon.metrics.freshness_quantiles(0.5, 0.99)
    assert daemon.active.dead_letters.count == 0, "the benchmark's events must all be valid"
    daemon.request_stop(watchdog=False)
    thread.join()
    return p50, p99, expected / produced_seconds


def measure(count: int, rate: float, seconds: float, state: Path, log_dir: Path | None = None) -> dict:
    """Every measure of this benchmark on a fresh local stack, as the ``daemon`` section of ``streamer bench``
    (:mod:`streamer.benchmarks.report` derives the ratios). ``state`` holds the daemons' checkpoints."""
    with LocalStack(log_dir=log_dir) as stack:
        admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
        admin.create_topics([NewTopic("bench-fill", 1, 1), NewTopic("bench-live", 1, 1)])
        admin.close()
        _fill(stack.bootstrap_servers, "bench-fill", count)
        # the raw baseline uses the daemon's own consumer options (same settings object)
        raw, raw_cpu = raw_consume_rate(_settings(stack, "bench-fill", "bench-raw", state), "bench-fill", count)
        measured = daemon_rate(stack, "bench-fill", count, state)
        alone, alone_cpu = learning_alone(_settings(stack, "bench-fill", "bench-alone", state), count)
        p50, p99, offered = freshness(stack, "bench-live", rate, seconds, state)
    return {"events": count, "partitions": 1, "cores": os.cpu_count(), "raw_consume_events_per_second": raw,
            "raw_consume_cpu_seconds_per_event": raw_cpu, "daemon_events_per_second": measured["events_per_second"],
            "daemon_learner_cpu_seconds_per_event": measured["learner_cpu_per_event"],
            "daemon_fetcher_cpu_seconds_per_event": measured["fetcher_cpu_per_event"],
            "learning_alone_events_per_second": alone, "learning_alone_cpu_seconds_per_event": alone_cpu,
            "spare_time_replayed_pairs": measured["replayed_pairs"], "target_rate": rate, "rate_seconds": seconds,
            "offered_events_per_second": offered, "freshness_p50_seconds": p50, "freshness_p99_seconds": p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--replay-mode", choices=("spare", "inline"), default="spare")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="an engine knob for the daemon and the learning-alone run, e.g. interleaved_passes=0 "
                             "or workers=2 (repeatable; the defaults of `streamer run` otherwise)")
    args = parser.parse_args()
    global REPLAY_MODE
    REPLAY_MODE = args.replay_mode
    try:
        KNOBS.update(parse_knobs(args.knob))
    except ValueError as error:
        parser.error(str(error))
    state = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    try:
        section = measure(args.events, args.rate, args.seconds, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    ratios = compute_ratios({"daemon": section})["daemon"]
    raw, sustained = section["raw_consume_events_per_second"], section["daemon_events_per_second"]
    print(f"events: {args.events:,} (yoochoose, JSON, 1 partition); engine knobs: "
          f"{', '.join(f'{name}={value}' for name, value in KNOBS.items()) or 'the defaults'}")
    print(f"raw kafka-python consume rate : {raw:12,.0f} events/s")
    print(f"daemon end-to-end (to Redis)  : {sustained:12,.0f} events/s")
    print(f"replay mode {args.replay_mode}: spare-time replayed pairs in the throughput run: "
          f"{section['spare_time_replayed_pairs']:,} (paid once the backlog is learned; not in the timing)")
    print(f"ratio daemon / raw            : {ratios['daemon_vs_raw_consume']:12.3f}   (target >= 0.9)")
    print(f"processor time per event      : raw consumer {section['raw_consume_cpu_seconds_per_event'] * 1e6:.2f} µs; "
          f"daemon {_microseconds(section)}")
    if ratios["cores_needed_for_target"] is not None:
        print(f"cores the daemon needs at 0.9 of the raw rate: {ratios['cores_needed_for_target']:.2f} "
              f"(this machine: {section['cores']})")
    print(f"learning alone (no Kafka, no Redis): {section['learning_alone_events_per_second']:,.0f} events/s, "
          f"{section['learning_alone_cpu_seconds_per_event'] * 1e6:.2f} µs per event = "
          f"{ratios['learning_alone_vs_raw_consume']:.3f} of the raw consume rate")
    print(f"freshness at {section['offered_events_per_second']:,.0f} events/s offered for {args.seconds:.0f} s: "
          f"p50 {section['freshness_p50_seconds'] * 1000:.0f} ms, p99 {section['freshness_p99_seconds'] * 1000:.0f} ms"
          "   (target p99 <= 1000 ms)")


def _microseconds(section: dict) -> str:
    learner = section["daemon_learner_cpu_seconds_per_event"]
    fetcher = section["daemon_fetcher_cpu_seconds_per_event"]
    if fetcher is None:
        return f"{learner * 1e6:.2f} µs (learning process; the fetch process's time not measured)"
    return f"{(learner + fetcher) * 1e6:.2f} µs = {learner * 1e6:.2f} (learning process) + {fetcher * 1e6:.2f} (fetch process)"


if __name__ == "__main__":
    main()
