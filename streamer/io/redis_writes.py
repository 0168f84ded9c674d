"""What the Redis sink writes, and how it connects: the fenced Lua scripts, a snapshot, a flush's result.

Every script first checks that the namespace lease still holds our value (``FENCE_CHECK``), so a fenced daemon
writes nothing; the writes are idempotent (``HSET``/``SET``/``DEL``/``ZADD`` after ``DEL``). The layout of the
keys (and the vector search index over them) is :mod:`streamer.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from streamer.errors import StreamerError
from streamer.io.lease import FENCE_CHECK
from streamer.keys import DTYPE, FIELD_UPDATED_AT, FIELD_VECTOR, FIELD_VERSION, Keys, encode_vector

__all__ = ["FencedError", "FlushResult", "Snapshot", "connect_redis", "SCRIPTS", "item_calls", "user_calls",
           "meta_call"]

BATCH = 256  # keys per script call

_WRITE_ITEMS = FENCE_CHECK + f"""
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], '{FIELD_VECTOR}', ARGV[2 * i - 1], '{FIELD_VERSION}', ARGV[2 * i],
             '{FIELD_UPDATED_AT}', ARGV[2])
end
return #KEYS - 1
"""
_DELETE = FENCE_CHECK + "for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end return #KEYS - 1\n"
_UNLIST = FENCE_CHECK + "for i = 2, #KEYS do redis.call('ZREM', KEYS[i], unpack(ARGV, 2)) end return #KEYS - 1\n"
_WRITE_USERS = FENCE_CHECK + """
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[2]) end
return #KEYS - 1
"""
_REPLACE_NEIGHBOURS = FENCE_CHECK + """
local a = 2
for i = 2, #KEYS do
  local n = tonumber(ARGV[a]); a = a + 1
  redis.call('DEL', KEYS[i])
  if n > 0 then redis.call('ZADD', KEYS[i], unpack(ARGV, a, a + 2 * n - 1)) end
  a = a + 2 * n
end
return #KEYS - 1
"""
_WRITE_META = FENCE_CHECK + "redis.call('HSET', KEYS[2], unpack(ARGV, 2)) return 1\n"


class FencedError(StreamerError):
    """Another daemon holds the namespace lease: this one must not write."""


@dataclass
class FlushResult:
    items: int = 0
    retired: int = 0
    users: int = 0
    seconds: float = 0.0
    freshness: list[float] = field(default_factory=list)  # one sample per ingested batch the flush wrote


@dataclass
class Snapshot:
    """One flush taken off the sink: the pipelined calls (vectors already encoded) and what they cover."""

    calls: list[tuple]
    stamps: dict[str, float | None]  # item -> produce time of its oldest change
    retired: list[str]
    users: list[str]
    seconds: float = 0.0  # time taken to build it
    sequence: int = 0  # 1, 2, ... in the order taken (the checkpoint waits for given ones)
    neighbours: list = field(default_factory=list)  # [(item, neighbour ids best first)] its calls replace
    version: int = 0  # the ``version``/``model_version`` its calls write


def connect_redis(settings) -> redis.Redis:
    """A lazily connecting client for ``settings.redis_url`` with its ACL/TLS options and short timeouts."""
    url = settings.redis_url
    timeout = settings.redis_timeout  # a hung server costs a thread this long (twice: one retry), never the loop
    options = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 2.0), "health_check_interval": 30,
               "retry": Retry(NoBackoff(), 1)}  # fail fast: the daemon's loop backs off and keeps training
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password:
        options["password"] = settings.redis_password
    if settings.redis_tls and url.startswith("redis://"):
        url = "rediss://" + url[len("redis://"):]
    if url.startswith("rediss://"):
        for name in ("ca_certs", "certfile", "keyfile"):
            value = getattr(settings, f"redis_tls_{name}")
            if value:
                options[f"ssl_{name}"] = value
    return redis.Redis.from_url(url, **options)


SCRIPTS = {"items": _WRITE_ITEMS, "delete": _DELETE, "users": _WRITE_USERS, "neighbours": _REPLACE_NEIGHBOURS,
           "meta": _WRITE_META, "unlist": _UNLIST}  # registered by name on the sink's client


def item_calls(keys: Keys, engine, items: list[str], now: float, version: int) -> list[tuple]:
    """``items`` script calls writing the items' served vectors (encoded once per batch) at ``version``."""
    calls = []
    for start in range(0, len(items), BATCH):
        item_keys, args = [], [now]
        found, vectors = engine.vectors_for(items[start:start + BATCH])
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        size = vectors.shape[1] * 4
        blob = vectors.tobytes()
        for index, item in enumerate(found):
            item_keys.append(keys.item(item))
            args.extend((blob[index * size:(index + 1) * size], version))
        if item_keys:
            calls.append(("items", item_keys, args))
    return calls


def user_calls(keys: Keys, engine, users: list[str], ttl_ms: int) -> list[tuple]:
    """``users`` script calls writing the users' vectors with a time to live."""
    calls = []
    for start in range(0, len(users), BATCH):
        user_keys, args = [], [ttl_ms]
        for user in users[start:start + BATCH]:
            vector = engine.user_vector(user)
            if vector is not None:
                user_keys.append(keys.user(user))
                args.append(encode_vector(vector))
        if user_keys:
            calls.append(("users", user_keys, args))
    return calls


def meta_call(keys: Keys, engine, now: float, model_id: str, version: int) -> tuple:
    """The ``meta`` script call: what a reader needs to decode the vectors, and the model's version."""
    settings = engine.settings
    normalised = getattr(settings, "normalise", getattr(settings, "normalize", False))
    meta = {"vector_size": settings.vector_size, "dtype": DTYPE, "normalised": int(bool(normalised)),
            "model_id": model_id, "model_version": version, "item_count": engine.item_count, "last_flush": now}
    return ("meta", [keys.meta], [value for pair in meta.items() for value in pair])
