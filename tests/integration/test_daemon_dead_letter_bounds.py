"""Dead letters are bounded: an oversized bad message never stops the stream (issue 16 item 4), and a JSON
array of many bad elements is one dead letter, not one per element (item 5)."""

from __future__ import annotations

import base64
import hashlib
import time

import orjson
import pytest
from kafka import KafkaProducer

from streamer.io.dead_letter import MAX_KEPT_BYTES, MAX_LISTED_FAILURES
from tests.integration.daemon_support import (
    DaemonThread, event_value, manifest_offsets, produce, read_topic, settings_for, wait_for,
)

pytestmark = pytest.mark.integration
KAFKA_REQUEST_LIMIT = 1_048_576  # kafka-python's default max_request_size


def _good_events(count: int, now: float) -> list[tuple[bytes, bytes]]:
    return [(f"u{index % 20}".encode(), event_value(f"u{index % 20}", f"i{index % 50}", now - 3600 + index))
            for index in range(count)]


def _produce_large(bootstrap: str, topic: str, messages) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    for key, value in messages:
        producer.send(topic, key=key, value=value).get(timeout=60)
    producer.close()


def _letters(bootstrap: str, topic: str, expected: int) -> list[dict]:
    records = read_topic(bootstrap, f"{topic}.dlq", expected, settle=2.0)
    assert all(len(record.value) < KAFKA_REQUEST_LIMIT for record in records)
    return sorted((orjson.loads(record.value) for record in records), key=lambda letter: letter["offset"])


def test_oversized_bad_messages_are_truncated_dead_letters_and_the_stream_goes_on(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    now = time.time()
    oversized = [
        (b"k1", b"\x00not json" * 100_000),                                         # 900 KB of non-JSON
        (b"k2", orjson.dumps({"user": "u" * 800_000, "item": "i", "ts": now})),    # an 800 KB id
        (b"k" * 300_000, b"x" * 3_000_000),                                         # 3 MB value, 300 KB key
    ]
    good = _good_events(2000, now)
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state",
                            max_message_bytes=4_000_000, vector_size=8)
    with DaemonThread(settings) as running:
        produce(kafka_bootstrap, topic, good[:1000])
        _produce_large(kafka_bootstrap, topic, oversized)
        produce(kafka_bootstrap, topic, good[1000:])
        total = len(good) + len(oversized)
        wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0)) == total or not running.alive, 120,
                 "the checkpoint to cover the whole stream")
        assert running.alive, running.error
        assert running.daemon.active.engine.event_count == len(good)
    letters = _letters(kafka_bootstrap, topic, len(oversized))
    assert [letter["offset"] for letter in letters] == [1000, 1001, 1002]
    for letter, (key, value) in zip(letters, oversized):
        assert letter["value_size"] == len(value) and letter["key_size"] == len(key)
        assert letter["value_sha256"] == hashlib.sha256(value).hexdigest()
        assert letter["key_sha256"] == hashlib.sha256(key).hexdigest()
        assert letter["value_truncated"] is True
        kept = base64.b64decode(letter["value"])
        assert len(kept) == MAX_KEPT_BYTES and value.startswith(kept)
        assert value.startswith(kept)
    assert [letter["reason"] for letter in letters] == ["not_json", "id_too_long:user", "not_json"]
    assert letters[2]["key_truncated"] is True and letters[0]["key_truncated"] is False


def test_an_array_of_many_bad_elements_is_one_dead_letter_listing_them(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    now = time.time()
    elements: list = [1] * 2000  # 2,000 bad elements (wrong_type:record) ...
    elements[7] = {"user": "u", "item": "kept", "ts": now - 10}  # ... one valid one, still learned
    elements[9] = {"user": "u", "item": "i", "ts": "yesterday"}
    array = orjson.dumps(elements)
    good = _good_events(500, now)
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", vector_size=8)
    with DaemonThread(settings) as running:
        produce(kafka_bootstrap, topic, good[:250] + [(b"array", array)] + good[250:])
        wait_for(lambda: manifest_offsets(tmp_path / "state").get((topic, 0)) == len(good) + 1, 120,
                 "the checkpoint to cover the whole stream")
        assert running.alive
        assert running.daemon.active.engine.event_count == len(good) + 1
        assert running.daemon.active.dead_letters.count == 1
    letters = _letters(kafka_bootstrap, topic, 1)
    assert len(letters) == 1
    letter = letters[0]
    assert letter["offset"] == 250 and letter["index"] == 0 and letter["reason"] == "wrong_type:record"
    assert letter["failed"] == 1999 and letter["elements"] == 2000
    assert letter["reasons"] == {"wrong_type:record": 1998, "bad_ts": 1}
    listed = letter["failures"]
    assert len(listed) == MAX_LISTED_FAILURES
    assert listed[:9] == [[0, "wrong_type:record"], [1, "wrong_type:record"], [2, "wrong_type:record"],
                          [3, "wrong_type:record"], [4, "wrong_type:record"], [5, "wrong_type:record"],
                          [6, "wrong_type:record"], [8, "wrong_type:record"], [9, "bad_ts"]]
    assert base64.b64decode(letter["value"]) == array
