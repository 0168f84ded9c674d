"""10,000 malformed messages of many kinds mixed into a stream: each one is a dead letter with a reason."""

from __future__ import annotations

import base64
import time
from collections import Counter

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.integration.daemon_support import DaemonThread, manifest_offsets, produce, settings_for, wait_for

pytestmark = pytest.mark.integration
MALFORMED = 10_000
VALID_EVERY = 5  # one valid message after every 5 malformed ones
MAX_BYTES = 4096


def _malformed_kinds(now: float) -> list[bytes | None]:
    def event(**fields) -> bytes:
        return orjson.dumps({"user": "u", "item": "i", "ts": now - 60, **fields})

    return [
        b"not json {", b"", None, b'"a string"', b"123", b"null", b"true", b"[]", b"\xff\xfe{",
        b'{"user": "u", "item": "i", "ts": NaN}',
        orjson.dumps({"user": "u", "item": "i"}), orjson.dumps({"item": "i", "ts": now}),
        orjson.dumps({"user": "u", "ts": now}), event(user=[1]), event(user={"a": 1}), event(item=True),
        event(item=1.5), event(ts="yesterday"), event(ts=-5), event(ts=True), event(ts=now + 30 * 86400),
        event(ts="2999-01-01T00:00:00Z"), event(ts=1e300), event(user=""), event(item="x" * 300),
        event(weight="heavy"), event(type=5), event(pad="x" * (MAX_BYTES + 10)),
        orjson.dumps([{"user": "u", "item": 7.5, "ts": now}]),
    ]


def _stream(now: float):
    """(key, value, is_valid) in order: MALFORMED bad messages with a valid event after every VALID_EVERY."""
    kinds = _malformed_kinds(now)
    valid_index = 0
    for index in range(MALFORMED):
        yield b"bad", kinds[index % len(kinds)], False
        if index % VALID_EVERY == VALID_EVERY - 1:
            user, item = f"user{valid_index % 50}", f"item{valid_index % 97}"
            yield user.encode(), orjson.dumps({"user": user, "item": item, "ts": now - 3600 + valid_index}), True
            valid_index += 1


def _read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    partitions = consumer.partitions_for_topic(topic) or {0}  # an auto-created topic may have several
    consumer.assign([TopicPartition(topic, partition) for partition in sorted(partitions)])
    consumer.seek_to_beginning()
    records, deadline = [], time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return records


def test_every_malformed_message_is_a_dead_letter_and_every_valid_event_is_learned(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    stream = list(_stream(time.time()))
    valid = sum(1 for _, _, is_valid in stream if is_valid)
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state",
                            max_message_bytes=MAX_BYTES, max_future_seconds=3600.0, vector_size=8)
    with DaemonThread(settings) as running:
        produce(kafka_bootstrap, topic, [(key, value) for key, value, _ in stream])
        wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0)) == len(stream), 120,
                 "the checkpoint to cover the whole stream")
        dead = _read_all(kafka_bootstrap, f"{topic}.dlq", MALFORMED)
        assert running.alive
        assert running.daemon.active.engine.event_count == valid
        assert running.daemon.active.dead_letters.count == MALFORMED

    assert len(dead) == MALFORMED
    letters = sorted((orjson.loads(record.value) for record in dead), key=lambda letter: letter["offset"])
    bad_offsets = [offset for offset, (_, _, is_valid) in enumerate(stream) if not is_valid]
    assert [letter["offset"] for letter in letters] == bad_offsets
    for letter in letters:
        original = stream[letter["offset"]][1]
        assert letter["topic"] == topic and letter["partition"] == 0
        assert letter["reason"]
        assert (None if letter["value"] is None else base64.b64decode(letter["value"])) == original
    reasons = Counter(letter["reason"] for letter in letters)
    assert {"not_json", "oversize", "future_ts", "bad_ts", "empty_id:user", "id_too_long:item",
            "missing_field:ts", "wrong_type:user", "wrong_type:record", "wrong_type:weight"} <= set(reasons)
    assert len(reasons) >= 15
    in_arrays = sum(1 for _, value, is_valid in stream if not is_valid and value and value.startswith(b"[{"))
    assert in_arrays > 0 and sum(1 for letter in letters if letter["index"] == 0) == in_arrays
