"""Dead letters: every message the daemon cannot learn goes to ``<topic>.dlq``, once, with its reasons.

The value is JSON: the original key and bytes (base64), where they came from, why they were rejected
and when. A dead letter always fits in one Kafka request: key and value keep at most
:data:`MAX_KEPT_BYTES` of the original bytes (``*_truncated`` says so), and their full size and SHA-256
are always given, so a 10 MB message the broker accepted is a 90 KB dead letter, not a crash loop. A
JSON array message with invalid elements is one dead letter: ``failed`` elements of ``elements``, their
count per reason, and the first :data:`MAX_LISTED_FAILURES` ``[index, reason]`` pairs (``index`` and
``reason`` are the first failure's). A sink like the others: ``add()`` queues a send, ``flush()`` waits
until the broker has them all (the checkpoint flushes it before offsets are committed, so no dead letter
is lost).

>>> record = dead_letter_record(b"{oops", "events", 3, 41, "not_json", key=b"u1", now=0.0)
>>> sorted(orjson.loads(record))  # doctest: +NORMALIZE_WHITESPACE
['elements', 'failed', 'failures', 'index', 'key', 'key_sha256', 'key_size', 'key_truncated', 'offset',
 'partition', 'reason', 'reasons', 'time', 'timestamp', 'topic', 'value', 'value_sha256', 'value_size',
 'value_truncated']
>>> base64.b64decode(orjson.loads(record)["value"])
b'{oops'
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections import Counter
from typing import Any

import orjson
from kafka.errors import MessageSizeTooLargeError

from streamer.logs import log_event

__all__ = ["MAX_KEPT_BYTES", "MAX_LISTED_FAILURES", "DeadLetterQueue", "dead_letter_record"]

logger = logging.getLogger("streamer.dlq")
#: Bytes of the original key and of the value a dead letter keeps (base64 makes them 4/3 larger): the
#: whole letter stays far below kafka-python's 1,048,576-byte request limit and the broker's message limit.
MAX_KEPT_BYTES = 65_536
#: ``[index, reason]`` pairs listed for an array message; ``failed`` and ``reasons`` count all of them.
MAX_LISTED_FAILURES = 100


def _kept(name: str, data: bytes | None, limit: int) -> dict[str, Any]:
    """``name`` (base64 of at most ``limit`` bytes), its full size, SHA-256 and whether it was cut."""
    if data is None:
        return {name: None, f"{name}_size": None, f"{name}_sha256": None, f"{name}_truncated": False}
    return {name: base64.b64encode(data[:limit]).decode("ascii"), f"{name}_size": len(data),
            f"{name}_sha256": hashlib.sha256(data).hexdigest(), f"{name}_truncated": len(data) > limit}


def dead_letter_record(value: bytes | None, topic: str, partition: int, offset: int, reason: str, *,
                       key: bytes | None = None, timestamp: int | None = None, index: int | None = None,
                       failures: list[tuple[int, str]] | None = None, elements: int | None = None,
                       now: float | None = None, kept_bytes: int = MAX_KEPT_BYTES) -> bytes:
    """The JSON value of one dead letter. ``failures``: the ``(index, reason)`` of every invalid element of
    a JSON array message of ``elements`` elements (``index``/``reason`` then default to the first one's);
    without them the whole message failed for ``reason`` (``index``: its position in a one-element array)."""
    if failures:
        index, reason = failures[0]
    else:
        failures = [] if index is None else [(index, reason)]
    return orjson.dumps({
        "topic": topic, "partition": partition, "offset": offset, "reason": reason, "index": index,
        "failed": max(1, len(failures)), "elements": elements,
        "reasons": dict(Counter(why for _, why in failures)) if failures else {reason: 1},
        "failures": [[position, why] for position, why in failures[:MAX_LISTED_FAILURES]],
        **_kept("key", key, kept_bytes), **_kept("value", value, kept_bytes),
        "timestamp": timestamp, "time": time.time() if now is None else now,
    })


class DeadLetterQueue:
    """Producer of dead letters to one topic; the producer is created on first use."""

    def __init__(self, topic: str, producer_factory, on_add=None):
        self.topic = topic
        self._on_add = on_add
        self._producer_factory = producer_factory
        self._producer = None
        self.count = 0
        self.by_reason: dict[str, int] = {}

    def add(self, message: Any, reason: str, index: int | None = None,
            failures: list[tuple[int, str]] | None = None, elements: int | None = None) -> None:
        """Queue one rejected Kafka ``message`` (a kafka-python ConsumerRecord) with its reason, or with the
        ``(index, reason)`` of each of its invalid elements (see :func:`dead_letter_record`)."""
        if self._producer is None:
            self._producer = self._producer_factory()
        if failures:
            index, reason = failures[0]
        letter = {"key": message.key, "timestamp": message.timestamp, "index": index, "failures": failures,
                  "elements": elements}
        value = dead_letter_record(message.value, message.topic, message.partition, message.offset, reason,
                                   **letter)
        key = None if message.key is None else message.key[:MAX_KEPT_BYTES]
        try:
            self._producer.send(self.topic, key=key, value=value)
        except MessageSizeTooLargeError:  # a producer limit below the letter's size: keep only sizes and hashes
            value = dead_letter_record(message.value, message.topic, message.partition, message.offset, reason,
                                       **letter, kept_bytes=0)
            self._producer.send(self.topic, key=None if key is None else key[:256], value=value)
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if self._on_add is not None:
            self._on_add(reason)
        log_event(logger, logging.WARNING, "dead_letter", topic=message.topic, partition=message.partition,
                  offset=message.offset, reason=reason, index=index, failed=len(failures) if failures else 1)

    def flush(self, timeout: float | None = 30.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=timeout)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
