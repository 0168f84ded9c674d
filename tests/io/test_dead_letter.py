"""Dead-letter records: original bytes, origin and reason; the queue sends one per rejected record."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import orjson

from streamer.io.dead_letter import DeadLetterQueue, dead_letter_record
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
                      "key": base64.b64encode(b"u1").decode(), "value": base64.b64encode(b"\xff{not json").decode(),
                      "timestamp": 1700000000000, "time": 12.5}


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
