"""The lookup client's wire side: its errors, the published meta, and the encoded commands and parsed replies.

Pure functions over bytes (no connection), so they are tested without a server; :mod:`streamer.lookup` sends them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


from streamer.errors import StreamerError
from streamer.keys import DTYPE, FIELD_VECTOR, Keys

__all__ = [
    "CorruptMeta",
    "CorruptVector",
    "IndexNotFound",
    "LookupClientError",
    "LookupUnavailable",
    "NamespaceNotFound",
    "PublishedMeta",
    "SearchUnavailable",
    "WrongVectorSize",
    "HGET_VECTOR",
    "encode_command",
    "encode_vector_reads",
    "knn_search_arguments",
    "parse_knn_reply",
    "parse_meta",
    "parse_scored_members",
]


class LookupClientError(StreamerError):
    """Root of every error the lookup client raises."""


class LookupUnavailable(LookupClientError):
    """Redis could not be reached, or did not answer in time."""


class NamespaceNotFound(LookupClientError):
    """``{ns}:meta`` does not exist: nothing has been published under this namespace."""


class CorruptMeta(LookupClientError):
    """``{ns}:meta`` exists but is malformed or describes a layout this client cannot read."""


class CorruptVector(LookupClientError):
    """A stored vector blob does not have ``vector_size * 4`` bytes."""


class WrongVectorSize(LookupClientError, ValueError):
    """A query vector does not have the namespace's ``vector_size``."""


class SearchUnavailable(LookupClientError):
    """The server has no search module (Redis Stack / Redis 8), so vector queries are impossible."""


class IndexNotFound(SearchUnavailable):
    """The server has the search module but the namespace's vector index was never created."""


@dataclass(frozen=True)
class PublishedMeta:
    """What ``{ns}:meta`` says about the published model."""

    vector_size: int
    dtype: str
    normalised: bool | None
    model_version: str | None
    model_id: str | None
    item_count: int | None
    last_flush: float | None


def _text(fields: dict, name: str) -> str | None:
    value = fields.get(name.encode(), fields.get(name))
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def parse_meta(fields: dict, namespace: str = "i2v") -> PublishedMeta:
    """A :class:`PublishedMeta` from the raw ``HGETALL {ns}:meta`` reply (bytes or str keys)."""
    if not fields:
        raise NamespaceNotFound(f"nothing published under namespace {namespace!r}: {namespace}:meta does not exist")
    try:
        vector_size = int(_text(fields, "vector_size"))
        item_count = _text(fields, "item_count")
        last_flush = _text(fields, "last_flush")
        normalised = _text(fields, "normalised")
        meta = PublishedMeta(
            vector_size=vector_size,
            dtype=_text(fields, "dtype") or DTYPE,
            normalised=None if normalised is None else normalised.lower() in ("1", "true", "yes"),
            model_version=_text(fields, "model_version"),
            model_id=_text(fields, "model_id"),
            item_count=None if item_count is None else int(item_count),
            last_flush=None if last_flush is None else float(last_flush),
        )
    except (TypeError, ValueError) as error:
        raise CorruptMeta(f"{namespace}:meta is malformed ({error}): {fields!r}") from error
    if meta.vector_size <= 0 or meta.dtype != DTYPE:
        raise CorruptMeta(f"{namespace}:meta describes vector_size={meta.vector_size} dtype={meta.dtype!r}; "
                          f"this client reads positive sizes of {DTYPE} only")
    return meta


def parse_scored_members(reply) -> list[tuple[str, float]]:
    """``[(member, score), ...]`` from a ``WITHSCORES`` reply: RESP2 flat list or RESP3 pairs."""
    if not reply:
        return []
    if isinstance(reply[0], (list, tuple)):
        return [(member.decode(), float(score)) for member, score in reply]
    return [(member.decode(), float(score)) for member, score in zip(reply[0::2], reply[1::2])]


def knn_search_arguments(index: str, query_vector: bytes, k: int) -> list:
    """``FT.SEARCH`` arguments for the ``k`` nearest item hashes to ``query_vector`` (cosine)."""
    return [
        "FT.SEARCH", index, f"*=>[KNN {int(k)} @{FIELD_VECTOR} $query AS distance]",
        "PARAMS", "2", "query", query_vector,
        "SORTBY", "distance", "ASC", "RETURN", "1", "distance", "LIMIT", "0", str(int(k)), "DIALECT", "2",
    ]


def parse_knn_reply(reply, keys: Keys) -> list[tuple[str, float]]:
    """``[(item, cosine similarity), ...]`` from an ``FT.SEARCH`` KNN reply (RESP2 list or RESP3 map)."""
    if isinstance(reply, dict):
        rows = [(row[b"id"], row[b"extra_attributes"]) for row in reply.get(b"results", [])]
    else:
        rows = [(reply[position], dict(zip(reply[position + 1][0::2], reply[position + 1][1::2])))
                for position in range(1, len(reply), 2)]
    return [(keys.item_id(key), 1.0 - float(attributes[b"distance"])) for key, attributes in rows]


def encode_command(arguments: Sequence) -> bytes:
    """One command in the Redis wire protocol (RESP); arguments are str, bytes, int or float."""
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        if isinstance(argument, str):
            argument = argument.encode()
        elif isinstance(argument, int):
            argument = b"%d" % argument
        elif isinstance(argument, float):
            argument = repr(argument).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(argument), argument))
    return b"".join(parts)


_FIELD_VECTOR = FIELD_VECTOR.encode()
# ``HGET <key> vec`` on the wire, with the key left as a %-template: ``HGET_VECTOR % (len(key), key)``
HGET_VECTOR = b"*3\r\n$4\r\nHGET\r\n$%%d\r\n%%s\r\n$%d\r\n%s\r\n" % (len(_FIELD_VECTOR), _FIELD_VECTOR)


def encode_vector_reads(keys: Iterable[bytes]) -> bytes:
    """``HGET key vec`` for every key, in the wire protocol: the whole batch of :meth:`Lookup.vectors`."""
    return b"".join([HGET_VECTOR % (len(key), key) for key in keys])
