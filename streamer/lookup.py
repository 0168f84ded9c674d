"""Client for services: read the vectors and neighbour lists the daemon publishes to Redis.

The layout is the one in :mod:`streamer.keys` (``{ns}:item:{id}`` hashes, ``{ns}:nn:{id}`` sorted sets,
``{ns}:user:{id}`` strings, ``{ns}:meta``). The client connects lazily, reads ``{ns}:meta`` once to learn
the vector size, checks the length of every blob it decodes, answers ``None`` (or ``[]``) for anything
that is not published, and turns every Redis failure into a :class:`LookupClientError`. The wire side (errors,
encoded commands, parsed replies) is :mod:`streamer.lookup_protocol`.

>>> lookup = Lookup("redis://127.0.0.1:6379/0", namespace="i2v")        # doctest: +SKIP
>>> lookup.vector("sku-1")                                                # doctest: +SKIP
array([ 0.12, -0.03, ...], dtype=float32)
>>> lookup.similar("sku-1", k=3)                                          # doctest: +SKIP
[('sku-9', 0.91), ('sku-4', 0.88), ('sku-2', 0.85)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import redis
from redis import exceptions as redis_errors
from redis.backoff import NoBackoff
from redis.retry import Retry

from streamer.keys import DTYPE, WIRE_DTYPE, Keys, encode_vector
from streamer.lookup_protocol import (HGET_VECTOR, CorruptMeta, CorruptVector, IndexNotFound, LookupClientError,
                                      LookupUnavailable, NamespaceNotFound, PublishedMeta, SearchUnavailable,
                                      WrongVectorSize, encode_command, encode_vector_reads, knn_search_arguments,
                                      parse_knn_reply, parse_meta, parse_scored_members)

__all__ = [
    "CorruptMeta",
    "CorruptVector",
    "IndexNotFound",
    "Lookup",
    "LookupClientError",
    "LookupUnavailable",
    "NamespaceNotFound",
    "PublishedMeta",
    "SearchUnavailable",
    "WrongVectorSize",
    "encode_command",
    "encode_vector_reads",
    "knn_search_arguments",
    "parse_knn_reply",
    "parse_meta",
    "parse_scored_members",
]

_CONNECTION_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError)


def _default_client(redis_url: str, timeout: float) -> redis.Redis:
    """A pooled client that fails fast (short timeouts), binary replies, RESP2 (parsed faster than RESP3)."""
    return redis.Redis.from_url(redis_url, decode_responses=False, protocol=2, socket_timeout=timeout,
                                socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1))


class Lookup:
    """Typed reads of one namespace. Give ``redis_url`` or an injected ``client`` (binary replies).

    Thread-safe (one pooled connection per call). Vectors are read-only float32 views of the reply bytes:
    ``.copy()`` one before changing it in place.
    """

    def __init__(self, redis_url: str | None = None, *, client: redis.Redis | None = None,
                 namespace: str = "i2v", timeout: float = 1.0) -> None:
        if (redis_url is None) == (client is None):
            raise LookupClientError("give exactly one of redis_url or client")
        if client is not None and client.get_connection_kwargs().get("decode_responses"):
            raise LookupClientError("the injected client has decode_responses=True; vectors are binary: use False")
        self.keys = Keys(namespace)
        self.namespace = namespace
        self._owns_client = client is None
        self._client = client if client is not None else _default_client(redis_url, timeout)
        self._blob_size: int | None = None
        self._vector_size: int | None = None
        self._has_search: bool | None = None
        self._item_prefix = self.keys.item_prefix
        self._neighbours_prefix = self.keys.neighbours("")
        self._user_prefix = self.keys.user("")

    def _call(self, *arguments):
        """The reply of one command (see :meth:`_round_trip`)."""
        return self._round_trip(encode_command(arguments), 1, arguments[0])[0]

    def _round_trip(self, packed: bytes, replies: int, name: str) -> list:
        """Send ``packed`` commands in one write and read ``replies`` replies; retried once on a dropped
        connection (only reads are sent). Leaner than ``execute_command``/``Pipeline``: no callbacks."""
        for attempt in (1, 2):
            try:
                return self._send_and_read(packed, replies)
            except _CONNECTION_ERRORS as error:
                if attempt == 2:
                    raise LookupUnavailable(f"Redis unavailable for namespace {self.namespace!r}: {error}") from error
            except redis_errors.RedisError as error:
                raise LookupClientError(f"{name} failed in namespace {self.namespace!r}: {error}") from error

    def _send_and_read(self, packed: bytes, replies: int) -> list:
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([packed])
            return [connection.read_response() for _ in range(replies)]
        except BaseException:
            connection.disconnect()  # replies after a failure would still be unread
            raise
        finally:
            pool.release(connection)

    def meta(self) -> PublishedMeta:
        """Read ``{ns}:meta`` now (fresh item_count / last_flush) and remember its vector size."""
        reply = self._call("HGETALL", self.keys.meta)  # RESP2: flat list; RESP3: map
        fields = reply if isinstance(reply, dict) else dict(zip(reply[0::2], reply[1::2]))
        meta = parse_meta(fields, self.namespace)
        self._vector_size = meta.vector_size
        self._blob_size = meta.vector_size * np.dtype(DTYPE).itemsize
        return meta

    @property
    def vector_size(self) -> int:
        if self._vector_size is None:
            self.meta()
        return self._vector_size

    def _decode(self, blob: bytes | None, key: str | bytes) -> np.ndarray | None:
        if blob is None:
            return None
        if len(blob) != self._blob_size:
            name = key.decode() if isinstance(key, bytes) else key
            raise CorruptVector(f"{name} holds {len(blob)} bytes; {self.namespace}:meta says "
                                f"{self._vector_size} x {DTYPE} = {self._blob_size} bytes")
        return np.frombuffer(blob, dtype=WIRE_DTYPE)

    def vector(self, item: str) -> np.ndarray | None:
        """The item's vector (read-only float32 array), or ``None`` when the item is not published."""
        if self._blob_size is None:
            self.meta()
        key = (self._item_prefix + str(item)).encode()
        return self._decode(self._round_trip(HGET_VECTOR % (len(key), key), 1, "HGET")[0], key)

    def vectors(self, items: Iterable[str]) -> list[np.ndarray | None]:
        """Vectors of many items in one pipelined round trip; ``None`` where an item is not published."""
        if self._blob_size is None:
            self.meta()
        keys = [(self._item_prefix + str(item)).encode() for item in items]
        if not keys:
            return []
        blobs = self._round_trip(encode_vector_reads(keys), len(keys), "HGET")
        return [self._decode(blob, key) for blob, key in zip(blobs, keys)]

    def similar(self, item: str, k: int = 10) -> list[tuple[str, float]]:
        """The item's published neighbours, best first, with the model's scores; ``[]`` when it has none."""
        if k <= 0:
            return []
        reply = self._call("ZREVRANGE", self._neighbours_prefix + str(item), 0, k - 1, "WITHSCORES")
        return parse_scored_members(reply)

    def user_vector(self, user: str) -> np.ndarray | None:
        """The user's current interest vector, or ``None`` when unknown or expired."""
        if self._blob_size is None:
            self.meta()
        key = self._user_prefix + str(user)
        return self._decode(self._call("GET", key), key)

    def has_search(self) -> bool:
        """True when the server has the search module (asked once with ``FT._LIST``)."""
        if self._has_search is None:
            try:
                self._call("FT._LIST")
                self._has_search = True
            except LookupUnavailable:
                raise
            except LookupClientError as error:
                if "unknown command" not in str(error).lower():
                    raise
                self._has_search = False
        return self._has_search

    def _require_search(self) -> None:
        if not self.has_search():
            raise SearchUnavailable(
                "similar_to_vector and recommend_for_user need the Redis search module (Redis Stack or Redis 8); "
                "this server has none. similar(item) reads the published neighbour lists instead.")

    def similar_to_vector(self, vector: Sequence[float] | np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` items nearest to ``vector`` through the Redis vector index; score = cosine similarity."""
        self._require_search()
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (self.vector_size,):
            raise WrongVectorSize(f"query vector has shape {query.shape}; namespace {self.namespace!r} "
                                  f"holds vectors of size {self.vector_size}")
        if k <= 0:
            return []
        try:
            reply = self._call(*knn_search_arguments(self.keys.index, encode_vector(query), k))
        except LookupUnavailable:
            raise
        except LookupClientError as error:
            if "no such index" in str(error).lower() or "unknown index" in str(error).lower():
                raise IndexNotFound(f"no vector index {self.keys.index!r}: start the daemon with --create-index "
                                    "on a server with the search module") from error
            raise
        return parse_knn_reply(reply, self.keys)

    def recommend_for_user(self, user: str, k: int = 10) -> list[tuple[str, float]]:
        """Items nearest to the user's interest vector; ``[]`` for an unknown user."""
        self._require_search()
        vector = self.user_vector(user)
        return [] if vector is None else self.similar_to_vector(vector, k)

    def close(self) -> None:
        """Close the connection pool when this client created it (an injected client is left open)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> "Lookup":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
