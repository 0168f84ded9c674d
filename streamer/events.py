"""Event and catalog-update records: types, validation and payload decoding.

Shared by the engine (:class:`streamer.Trainer`) and the daemon. Every rejection raises
:class:`InvalidRecord` whose ``reason`` is a short machine-readable string (``missing_field:item``,
``bad_ts``, ``future_ts``, ``empty_id``, ``id_too_long``, ``wrong_type:user``, ``not_json``,
``oversize``, ...), which the daemon puts on its dead-letter topic.

Ids: strings of 1..256 characters. Integers (not booleans) are accepted and turned into their
decimal string, because many logs carry numeric ids; every other type is ``wrong_type:<field>``.
Timestamps: unix seconds (int or float, finite, >= 0, not a boolean) or an ISO-8601 string
(a naive one is read as UTC).

>>> parse_event(("u1", "i9", 12.5))
Event(user='u1', item='i9', ts=12.5, type=None, weight=None)
>>> parse_event({"user": 7, "item": "a", "ts": "1970-01-01T00:01:00Z"}).ts
60.0
>>> parse_event({"user": "u", "item": "", "ts": 1}).item
Traceback (most recent call last):
...
streamer.events.InvalidRecord: empty_id:item
"""

from __future__ import annotations

import datetime
import math
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamer.errors import StreamerError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_PAYLOAD_BYTES",
    "CatalogUpdate",
    "Event",
    "InvalidRecord",
    "decode_payload",
    "is_plain_event",
    "parse_catalog_update",
    "parse_event",
    "parse_id",
    "parse_ts",
]

MAX_ID_LENGTH = 256
MAX_PAYLOAD_BYTES = 1_000_000
MAX_ATTRIBUTES = 64
_LARGEST_FINITE = sys.float_info.max  # excludes inf, as parse_event does


def is_plain_event(user: Any, item: Any, ts: Any, latest: float = _LARGEST_FINITE) -> bool:
    """True when (user, item, ts) is already a valid event as it stands: str ids of 1..MAX_ID_LENGTH
    characters and an int/float ts in [0, latest]. The rules of :func:`parse_event` for the common
    shape, checked without building an :class:`Event` (the engine's and the daemon's fast path);
    anything else (ISO ts, int ids, NaN, bool, ...) goes through :func:`parse_event`."""
    return (type(user) is str and type(item) is str and (type(ts) is float or type(ts) is int)
            and 0 < len(user) <= MAX_ID_LENGTH and 0 < len(item) <= MAX_ID_LENGTH and 0 <= ts <= latest)


class InvalidRecord(StreamerError):
    """A record that cannot be learned; ``reason`` is short and machine-readable."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Event:
    """One interaction: ``user`` touched ``item`` at ``ts`` (unix seconds)."""

    user: str
    item: str
    ts: float
    type: str | None = None
    weight: float | None = None


@dataclass(frozen=True, slots=True)
class CatalogUpdate:
    """``op`` is ``upsert`` (with ``attrs``) or ``retire``; ``ts`` is optional."""

    op: str
    item: str
    attrs: dict[str, str] = field(default_factory=dict)
    ts: float | None = None


def parse_id(value: Any, name: str) -> str:
    """A non-empty id of at most :data:`MAX_ID_LENGTH` characters; ints become strings."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRecord(f"wrong_type:{name}")
    text = value if isinstance(value, str) else str(value)
    if not text:
        raise InvalidRecord(f"empty_id:{name}")
    if len(text) > MAX_ID_LENGTH:
        raise InvalidRecord(f"id_too_long:{name}")
    return text


def _parse_iso(text: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRecord("bad_ts") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def parse_ts(value: Any, now: float | None = None, max_future_seconds: float | None = None) -> float:
    """Unix seconds from a number or ISO-8601 string; rejects NaN, inf, negatives and booleans.

    With ``now`` and ``max_future_seconds``, a ts later than ``now + max_future_seconds`` is ``future_ts``.
    """
    if isinstance(value, bool):
        raise InvalidRecord("bad_ts")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        ts = _parse_iso(value)
    else:
        raise InvalidRecord("bad_ts")
    if not math.isfinite(ts) or ts < 0:
        raise InvalidRecord("bad_ts")
    if now is not None and max_future_seconds is not None and ts > now + max_future_seconds:
        raise InvalidRecord("future_ts")
    return ts


def _parse_weight(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRecord("wrong_type:weight")
    return float(value)


def _parse_type(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        raise InvalidRecord("wrong_type:type")
    return value


def parse_event(record: Any, now: float | None = None, max_future_seconds: float | None = None) -> Event:
    """Validate a ``(user, item, ts)`` tuple/list or a ``{"user", "item", "ts", "type"?, "weight"?}`` dict."""
    if isinstance(record, Event):
        record = {"user": record.user, "item": record.item, "ts": record.ts,
                  "type": record.type, "weight": record.weight}
    if isinstance(record, (tuple, list)):
        if len(record) != 3:
            raise InvalidRecord("wrong_arity")
        user, item, ts = record
        return Event(parse_id(user, "user"), parse_id(item, "item"), parse_ts(ts, now, max_future_seconds))
    if not isinstance(record, dict):
        raise InvalidRecord("wrong_type:record")
    for name in ("user", "item", "ts"):
        if record.get(name) is None:
            raise InvalidRecord(f"missing_field:{name}")
    return Event(
        parse_id(record["user"], "user"),
        parse_id(record["item"], "item"),
        parse_ts(record["ts"], now, max_future_seconds),
        _parse_type(record.get("type")),
        _parse_weight(record.get("weight")),
    )


def _parse_attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise InvalidRecord("wrong_type:attrs")
    for key, text in value.items():
        if not isinstance(key, str) or not isinstance(text, str) or len(key) > MAX_ID_LENGTH or len(text) > MAX_ID_LENGTH:
            raise InvalidRecord("wrong_type:attrs")
    return dict(value)


def parse_catalog_update(record: Any) -> CatalogUpdate:
    """Validate ``{"op": "upsert", "item", "attrs": {str: str}, "ts"?}`` or ``{"op": "retire", "item", "ts"?}``."""
    if isinstance(record, CatalogUpdate):
        record = {"op": record.op, "item": record.item, "attrs": record.attrs, "ts": record.ts}
    if not isinstance(record, dict):
        raise InvalidRecord("wrong_type:record")
    operation = record.get("op")
    if operation is None:
        raise InvalidRecord("missing_field:op")
    if operation not in ("upsert", "retire"):
        raise InvalidRecord("bad_op")
    if record.get("item") is None:
        raise InvalidRecord("missing_field:item")
    item = parse_id(record["item"], "item")
    ts = None if record.get("ts") is None else parse_ts(record["ts"])
    attributes = _parse_attributes(record.get("attrs")) if operation == "upsert" else {}
    return CatalogUpdate(operation, item, attributes, ts)


def decode_payload(data: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> list[Any]:
    """Decode one JSON object, or a JSON array of objects, into a list of records (not yet validated)."""
    if data is None:
        raise InvalidRecord("not_json")
    if len(data) > max_bytes:
        raise InvalidRecord("oversize")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidRecord("not_json") from None
    if isinstance(value, list):
        return value
    return [value]
