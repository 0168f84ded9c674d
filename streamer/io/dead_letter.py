"""Dead letters: every record the daemon cannot learn goes to ``<topic>.dlq`` with a reason.

The value is JSON: the original key and bytes (base64), where they came from, why they were rejected
and when. A sink like the others: ``add()`` queues a send, ``flush()`` waits until the broker has
them all (the checkpoint flushes it before offsets are committed, so no dead letter is lost).

>>> record = dead_letter_record(b"{oops", "events", 3, 41, "not_json", key=b"u1", now=0.0)
>>> sorted(orjson.loads(record))
['index', 'key', 'offset', 'partition', 'reason', 'time', 'timestamp', 'topic', 'value']
>>> base64.b64decode(orjson.loads(record)["value"])
b'{oops'
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import orjson

from streamer.logs import log_event

__all__ = ["DeadLetterQueue", "dead_letter_record"]

logger = logging.getLogger("streamer.dlq")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def dead_letter_record(value: bytes | None, topic: str, partition: int, offset: int, reason: str, *,
                       key: bytes | None = None, timestamp: int | None = None, index: int | None = None,
                       now: float | None = None) -> bytes:
    """The JSON value of one dead letter (``index``: position in a JSON array message, else null)."""
    return orjson.dumps({
        "topic": topic, "partition": partition, "offset": offset, "reason": reason, "index": index,
        "key": _b64(key), "value": _b64(value), "timestamp": timestamp,
        "time": time.time() if now is None else now,
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

    def add(self, message: Any, reason: str, index: int | None = None) -> None:
        """Queue one rejected Kafka ``message`` (a kafka-python ConsumerRecord) with its reason."""
        if self._producer is None:
            self._producer = self._producer_factory()
        value = dead_letter_record(message.value, message.topic, message.partition, message.offset, reason,
                                   key=message.key, timestamp=message.timestamp, index=index)
        self._producer.send(self.topic, key=message.key, value=value)
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if self._on_add is not None:
            self._on_add(reason)
        log_event(logger, logging.WARNING, "dead_letter", topic=message.topic, partition=message.partition,
                  offset=message.offset, reason=reason, index=index)

    def flush(self, timeout: float | None = 30.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=timeout)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
