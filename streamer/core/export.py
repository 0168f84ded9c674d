"""Export vectors in the word2vec formats (``gensim.models.KeyedVectors.load_word2vec_format`` reads both).

Text: a header line ``<count> <vector_size>`` then one line per item: ``<id> <v1> <v2> ...``.
Binary: the same header line, then per item ``<id> `` followed by vector_size little-endian float32
values and a newline. Ids are UTF-8; whitespace inside an id (which the formats cannot represent) is
replaced by ``_``.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Sequence

import numpy as np

__all__ = ["write_word2vec", "export_token"]

_WHITESPACE = re.compile(r"\s")


def export_token(item: str) -> str:
    """The id as written in the export (whitespace replaced by ``_``)."""
    return _WHITESPACE.sub("_", item)


def write_word2vec(stream: BinaryIO, ids: Sequence[str], vectors: np.ndarray, binary: bool = False) -> int:
    """Write ``ids``/``vectors`` to a binary ``stream``; returns the number of items written."""
    vectors = np.asarray(vectors, dtype="<f4")
    count, size = vectors.shape if vectors.ndim == 2 else (0, 0)
    stream.write(f"{count} {size}\n".encode())
    for item, vector in zip(ids, vectors):
        token = export_token(item).encode("utf-8")
        if binary:
            stream.write(token + b" " + vector.tobytes() + b"\n")
        else:
            stream.write(token + b" " + " ".join(repr(float(value)) for value in vector).encode() + b"\n")
    return count
