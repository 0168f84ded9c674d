"""``streamer replay`` and :mod:`streamer.replay`: exact counts and per-user order on the real broker, pacing.

Pacing is checked on the computed schedule and with an injected clock, never on wall-clock timings.
Messages are counted by consuming them without a group (assign + seek_to_beginning) and cross-checked
with each partition's high watermark (``end_offsets()`` is wrong on Tansu).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streamer.cli import main
from streamer.datasets import load_events
from streamer.localstack import free_port
from streamer.replay import (Progress, ReplayStats, encode_event, format_progress, produce_events, replay_rows,
                             send_schedule)

integration = pytest.mark.integration


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0):
    """Every record of ``topic`` (plus anything beyond ``expected``) and the high watermark per partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} has no partitions"
        assignment = [TopicPartition(topic, partition) for partition in sorted(partitions)]
        consumer.assign(assignment)
        consumer.seek_to_beginning()
        records = []
        deadline = time.monotonic() + timeout  # a safety net, not an assertion
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=50_000).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
        highwaters = {tp.partition: consumer.highwater(tp) for tp in assignment}
        return records, highwaters
    finally:
        consumer.close()


def assert_exactly_in_order(records, highwaters, expected_rows):
    """Count matches (also per broker high watermarks) and each user's events arrive in the expected order."""
    assert len(records) == len(expected_rows)
    assert sum(highwaters.values()) == len(expected_rows), highwaters
    expected = defaultdict(list)
    for user, item, ts in expected_rows:
        expected[user].append({"user": user, "item": item, "ts": ts})
    got, partition_of = defaultdict(list), defaultdict(set)
    for record in sorted(records, key=lambda record: (record.partition, record.offset)):
        value = orjson.loads(record.value)
        assert record.key == value["user"].encode()
        got[value["user"]].append(value)
        partition_of[value["user"]].add(record.partition)
    assert all(len(partitions) == 1 for partitions in partition_of.values())
    assert got == expected


# --- the pure core ------------------------------------------------------------------------------------

def test_event_schema_is_user_item_and_float_seconds():
    assert orjson.loads(encode_event("u1", "i9", 1260759179)) == {"user": "u1", "item": "i9", "ts": 1260759179.0}
    assert isinstance(orjson.loads(encode_event("u", "i", 5))["ts"], float)


def test_schedule_without_pacing_sends_everything_at_once():
    assert list(send_schedule([5.0, 100.0, 1e6])) == [0.0, 0.0, 0.0]


def test_schedule_rate_spaces_consecutive_events():
    assert list(send_schedule([7.0] * 5, rate=4.0)) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_schedule_speedup_compresses_event_time():
    assert list(send_schedule([100.0, 110.0, 110.0, 130.0], speedup=10.0)) == [0.0, 1.0, 1.0, 3.0]


def test_schedule_with_rate_and_speedup_takes_the_stricter_bound_per_event():
    # burst of equal times: the rate spaces them; a long gap later: event time wins and the burst's delay
    # does not push the rest of the schedule.
    assert list(send_schedule([0.0, 0.0, 0.0, 100.0, 101.0], rate=2.0, speedup=10.0)) == [0.0, 0.5, 1.0, 10.0, 10.5]


def test_schedule_rejects_negative_settings():
    with pytest.raises(ValueError):
        list(send_schedule([1.0], rate=-1.0))


def test_replay_rows_waits_for_each_scheduled_time():
    clock, sent = FakeClock(), []
    rows = [("u", str(index), 1000.0 + index) for index in range(6)]
    stats = replay_rows(rows, lambda key, value: sent.append((clock(), key, value)), rate=2.0, speedup=2.0,
                        clock=clock, sleep=clock.sleep)
    assert [time for time, _, _ in sent] == list(send_schedule([ts for _, _, ts in rows], 2.0, 2.0))
    assert [orjson.loads(value)["item"] for _, _, value in sent] == [str(index) for index in range(6)]
    assert stats == ReplayStats(messages=6, seconds=2.5)


def test_replay_rows_unpaced_never_sleeps_and_honours_limit():
    clock, sent = FakeClock(), []
    rows = [("u", "i", float(index)) for index in range(10)]
    stats = replay_rows(rows, lambda key, value: sent.append(key), limit=4, clock=clock, sleep=clock.sleep)
    assert stats.messages == 4 and sent == [b"u"] * 4 and clock.sleeps == []


def test_replay_rows_reports_progress_about_every_interval():
    clock, reports = FakeClock(), []
    rows = [("u", "i", float(index)) for index in range(10)]
    replay_rows(rows, lambda key, value: None, rate=1.0, progress=reports.append, progress_interval=3.0,
                clock=clock, sleep=clock.sleep)
    assert [(report.done, report.total, report.elapsed_seconds) for report in reports] == [(4, 10, 3.0), (7, 10, 6.0),
                                                                                          (10, 10, 9.0)]


def test_progress_line_shows_done_total_rate_and_eta():
    line = format_progress(Progress(done=2_500, total=10_000, elapsed_seconds=2.0))
    assert "2,500/10,000" in line and "1,250 events/s" in line and "ETA 6 s" in line


# --- against the real broker --------------------------------------------------------------------------

@integration
@pytest.mark.parametrize("name", ["movielens", "yoochoose", "diginetica"])
def test_replay_of_a_shared_set_produces_every_row_in_time_order_per_user(name, kafka_bootstrap, unique_name,
                                                                         data_root, capsys):
    expected = load_events(name, data_root=data_root)
    topic = f"{unique_name}-{name}"
    code = main(["replay", name, "--topic", topic, "--bootstrap-servers", kafka_bootstrap, "--partitions", "4",
                 "--data-root", str(data_root), "--quiet"])
    assert code == 0
    assert f"replayed {len(expected):,} messages" in capsys.readouterr().out
    records, highwaters = consume_all(kafka_bootstrap, topic, len(expected))
    assert len(highwaters) == 4
    assert_exactly_in_order(records, highwaters, expected)


@integration
def test_replay_of_a_generic_csv_without_header(kafka_bootstrap, make_topic, tmp_path):
    path = tmp_path / "clicks.txt"
    path.write_text("5;u1;a\n1;u2;b\n3;u1;c\n3;u2;d\nbad;u3;e\n2;u3;f\n")
    topic = make_topic(partitions=2)
    code = main(["replay", str(path), "--columns", "1,2,0", "--no-header", "--delimiter", ";", "--topic", topic,
                 "--bootstrap-servers", kafka_bootstrap, "--quiet"])
    assert code == 0
    expected = [("u2", "b", 1.0), ("u3", "f", 2.0), ("u1", "c", 3.0), ("u2", "d", 3.0), ("u1", "a", 5.0)]
    assert_exactly_in_order(*consume_all(kafka_bootstrap, topic, len(expected)), expected)


@integration
def test_replay_takes_broker_and_topic_from_the_environment(kafka_bootstrap, make_topic, tmp_path, monkeypatch):
    path = tmp_path / "clicks.csv"
    path.write_text("user,item,ts\nu1,a,2\nu2,b,1\n")
    topic = make_topic(partitions=1)
    monkeypatch.setenv("STREAMER_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("STREAMER_TOPIC", topic)
    assert main(["replay", str(path), "--quiet"]) == 0
    assert_exactly_in_order(*consume_all(kafka_bootstrap, topic, 2), [("u2", "b", 1.0), ("u1", "a", 2.0)])


@integration
def test_replay_limit_sends_the_earliest_events_only(kafka_bootstrap, unique_name, data_root):
    topic = f"{unique_name}-limit"
    code = main(["replay", "diginetica", "--limit", "500", "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
                 "--partitions", "3", "--data-root", str(data_root), "--quiet"])
    assert code == 0
    expected = load_events("diginetica", data_root=data_root)[:500]
    assert_exactly_in_order(*consume_all(kafka_bootstrap, topic, 500), expected)


@integration
def test_replay_with_rate_delivers_every_event_in_order(kafka_bootstrap, unique_name, data_root):
    topic = f"{unique_name}-rate"
    code = main(["replay", "yoochoose", "--rate", "5000", "--limit", "300", "--topic", topic,
                 "--bootstrap-servers", kafka_bootstrap, "--partitions", "2", "--data-root", str(data_root), "--quiet"])
    assert code == 0
    expected = load_events("yoochoose", data_root=data_root)[:300]
    assert_exactly_in_order(*consume_all(kafka_bootstrap, topic, 300), expected)


@integration
def test_produce_events_paces_sends_by_the_schedule(kafka_bootstrap, make_topic, data_root):
    rows = load_events("movielens", data_root=data_root)[:200]
    topic, clock = make_topic(partitions=2), FakeClock()
    stats = produce_events(kafka_bootstrap, topic, rows, rate=100.0, speedup=1e6, clock=clock, sleep=clock.sleep)
    schedule = list(send_schedule([ts for _, _, ts in rows], rate=100.0, speedup=1e6))
    assert stats.messages == 200
    assert clock.now == pytest.approx(schedule[-1]) and stats.seconds == pytest.approx(schedule[-1])
    assert len(clock.sleeps) == sum(1 for previous, due in zip(schedule, schedule[1:]) if due > previous)
    assert schedule[-1] > 199 / 100.0  # event time made some gaps longer than the rate's
    assert_exactly_in_order(*consume_all(kafka_bootstrap, topic, 200), rows)


@integration
def test_unreachable_broker_is_a_clear_error_without_traceback(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user,item,ts\nu1,a,1\n")
    address = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "replay", str(path), "--bootstrap-servers", address,
         "--connect-timeout", "1", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert f"streamer: error: cannot reach Kafka at {address}" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_options_are_clear_errors(tmp_path, capsys):
    assert main(["replay", "diginetica", "--rate", "-1"]) == 1
    assert main(["replay", str(tmp_path / "missing.csv")]) == 1
    errors = capsys.readouterr().err
    assert "--rate must be >= 0" in errors and "neither a known data set" in errors
