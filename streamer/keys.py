"""The Redis layout services rely on: one place that builds every key and encodes every vector.

Imported by the daemon's sink and by the lookup client, so both always agree.

>>> keys = Keys("i2v")
>>> keys.item("sku-1"), keys.neighbours("sku-1"), keys.user("u7"), keys.meta
('i2v:item:sku-1', 'i2v:nn:sku-1', 'i2v:user:u7', 'i2v:meta')
>>> decode_vector(encode_vector([1.0, -2.5])).tolist()
[1.0, -2.5]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DTYPE",
    "FIELD_UPDATED_AT",
    "FIELD_VECTOR",
    "FIELD_VERSION",
    "Keys",
    "WIRE_DTYPE",
    "decode_vector",
    "encode_vector",
    "index_definition",
]

DTYPE = "float32"
FIELD_VECTOR = "vec"
FIELD_VERSION = "version"
FIELD_UPDATED_AT = "updated_at"
WIRE_DTYPE = np.dtype("<f4")  # how DTYPE is laid out in the blobs: float32 little-endian


@dataclass(frozen=True)
class Keys:
    """Key names under one namespace (default ``i2v``)."""

    namespace: str = "i2v"

    def item(self, item_id: str) -> str:
        """Hash with fields ``vec`` (float32 LE bytes), ``version``, ``updated_at``."""
        return f"{self.namespace}:item:{item_id}"

    def neighbours(self, item_id: str) -> str:
        """Sorted set: member = similar item id, score = the model's ``most_similar`` score."""
        return f"{self.namespace}:nn:{item_id}"

    def user(self, user_id: str) -> str:
        """String: the user's interest vector as float32 LE bytes, with a TTL."""
        return f"{self.namespace}:user:{user_id}"

    @property
    def item_prefix(self) -> str:
        return f"{self.namespace}:item:"

    @property
    def meta(self) -> str:
        """Hash: vector_size, dtype, normalised, model_id, model_version, item_count, last_flush."""
        return f"{self.namespace}:meta"

    @property
    def lease(self) -> str:
        """String: ``<owner>:<fencing token>`` of the one daemon allowed to write this namespace."""
        return f"{self.namespace}:lease"

    @property
    def fence(self) -> str:
        """Counter: the last fencing token handed out."""
        return f"{self.namespace}:fence"

    @property
    def index(self) -> str:
        """Name of the optional Redis vector-search index over the item hashes."""
        return f"{self.namespace}:idx"

    def item_id(self, key: str | bytes) -> str:
        """The item id of an item key (inverse of :meth:`item`)."""
        text = key.decode() if isinstance(key, bytes) else key
        if not text.startswith(self.item_prefix):
            raise ValueError(f"{text!r} is not an item key of namespace {self.namespace!r}")
        return text[len(self.item_prefix):]


def encode_vector(vector) -> bytes:
    """float32 little-endian bytes of a 1-d vector."""
    return np.ascontiguousarray(vector, dtype=WIRE_DTYPE).tobytes()


def decode_vector(data: bytes) -> np.ndarray:
    """The float32 vector stored by :func:`encode_vector` (native byte order, writable copy)."""
    return np.frombuffer(data, dtype=WIRE_DTYPE).astype(np.float32)


def index_definition(keys: Keys, vector_size: int) -> list[str]:
    """Arguments of ``FT.CREATE`` for an HNSW cosine index over ``{ns}:item:*`` hashes."""
    return [
        "FT.CREATE", keys.index, "ON", "HASH", "PREFIX", "1", keys.item_prefix,
        "SCHEMA", FIELD_VECTOR, "VECTOR", "HNSW", "6",
        "TYPE", "FLOAT32", "DIM", str(vector_size), "DISTANCE_METRIC", "COSINE",
    ]
