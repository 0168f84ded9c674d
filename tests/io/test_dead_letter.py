"""Dead-letter records: original bytes, origin and reason; the queue sends one per rejected record."""

from __future__ import annotations

import base64
import hashlib
from types import SimpleNamespace

import orjson

from streamer.io.dead_letter import MAX_KEPT_BYTES, MAX_LISTED_FAILURES, DeadLetterQueue, dead_letter_record
from streamer.logs import format_fields


class FakeProducer:
    def __init__(self):
        self.sent, self.flushed = [], 0

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, value))

    def flush(self, timeout=None):
        self.flushed += 1


def test_record_keeps_original_bytes_origin_and_reason():
    letter = orjson.loads(dead_letter_record(b"\xff{not json", "events", 2, 41, "not_json", key=b"u1",
                                             timestamp=1700000000000, index=None, now=12.5))
    assert letter == {"topic": "events", "partition": 2, "offset": 41, "reason": "not_json", "index": None,
                      "failed": 1, "elements": None, "reasons": {"not_json": 1}, "failures": [],
                      "key": base64.b64encode(b"u1").decode(), "key_size": 2,
                      "key_sha256": hashlib.sha256(b"u1").hexdigest(), "key_truncated": False,
                      "value": base64.b64encode(b"\xff{not json").decode(), "value_size": 10,
                      "value_sha256": hashlib.sha256(b"\xff{not json").hexdigest(), "value_truncated": False,
                      "timestamp": 1700000000000, "time": 12.5}


def test_a_large_message_keeps_a_bounded_prefix_its_size_and_hash():
    value, key = b"x" * (3 * MAX_KEPT_BYTES) + b"tail", b"k" * (MAX_KEPT_BYTES + 1)
    record = dead_letter_record(value, "events", 0, 5, "oversize", key=key)
    letter = orjson.loads(record)
    assert len(record) < 3 * MAX_KEPT_BYTES
    assert base64.b64decode(letter["value"]) == value[:MAX_KEPT_BYTES] and letter["value_truncated"] is True
    assert letter["value_size"] == len(value) and letter["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert letter["key_size"] == len(key) and letter["key_truncated"] is True


def test_an_array_letter_counts_all_failures_and_lists_a_bounded_number():
    failures = [(index, "bad_ts" if index % 2 else "wrong_type:record") for index in range(0, 1000, 3)]
    letter = orjson.loads(dead_letter_record(b"[...]", "events", 0, 5, "ignored", failures=failures, elements=1000))
    assert letter["index"] == 0 and letter["reason"] == "wrong_type:record"
    assert letter["failed"] == len(failures) and letter["elements"] == 1000
    assert letter["reasons"] == {"wrong_type:record": 167, "bad_ts": 167}
    assert letter["failures"] == [list(pair) for pair in failures[:MAX_LISTED_FAILURES]]


def test_a_producer_limit_below_the_letter_keeps_only_sizes_and_hashes():
    from kafka.errors import MessageSizeTooLargeError

    class SmallProducer(FakeProducer):
        def send(self, topic, key=None, value=None):
            if len(value) > 2000:
                raise MessageSizeTooLargeError("too large")
            super().send(topic, key, value)

    producer = SmallProducer()
    queue = DeadLetterQueue("events.dlq", lambda: producer)
    queue.add(SimpleNamespace(topic="events", partition=0, offset=7, key=b"k", value=b"y" * 5000, timestamp=5),
              "not_json")
    [(_, _, value)] = producer.sent
    letter = orjson.loads(value)
    assert letter["value"] == "" and letter["value_size"] == 5000 and letter["value_truncated"] is True


def test_tombstone_has_null_value():
    assert orjson.loads(dead_letter_record(None, "events", 0, 0, "not_json"))["value"] is None


def test_queue_creates_its_producer_lazily_and_counts_reasons():
    producer = FakeProducer()
    created = []
    queue = DeadLetterQueue("events.dlq", lambda: created.append(1) or producer, on_add=created.append)
    queue.flush()
    assert created == []
    message = SimpleNamespace(topic="events", partition=0, offset=7, key=b"k", value=b"[1]", timestamp=5)
    queue.add(message, "wrong_type:record", index=0)
    queue.add(message, "wrong_type:record", index=1)
    queue.flush()
    assert created == [1, "wrong_type:record", "wrong_type:record"]
    assert queue.count == 2 and queue.by_reason == {"wrong_type:record": 2} and producer.flushed == 1
    topic, key, value = producer.sent[1]
    assert topic == "events.dlq" and key == b"k"
    assert orjson.loads(value)["index"] == 1 and orjson.loads(value)["offset"] == 7


def test_log_lines_are_key_value():
    assert format_fields("dead_letter", {"topic": "events", "offset": 3, "reason": "bad ts"}) == \
        'dead_letter topic=events offset=3 reason="bad ts"'
