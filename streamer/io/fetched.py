"""What the fetch process hands the daemon: one partition's records as columns (:class:`RecordBatch`), a
record built only when one is needed (:class:`FetchedRecord`), and the pipe between the two processes widened.

>>> batch = RecordBatch("events", 0, [7, 8], [None, b"u1"], [b"{}", b"{}"], [1, 2])
>>> len(batch), batch[1].offset, batch[1].key
(2, 8, b'u1')
"""

from __future__ import annotations

import fcntl
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["FetchedRecord", "RecordBatch", "widen_pipe"]

PIPE_BYTES = 1 << 20


class FetchedRecord(NamedTuple):
    """The fields of a Kafka record the daemon reads (a ``ConsumerRecord`` has the same names)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class RecordBatch(Sequence):
    """One partition's fetched records as columns. ``values`` and ``timestamps`` are read as lists (the
    ingest fast path); ``batch[i]`` builds the :class:`FetchedRecord` only when one is needed (a dead letter)."""

    __slots__ = ("topic", "partition", "offsets", "keys", "values", "timestamps")

    def __init__(self, topic: str, partition: int, offsets: list, keys: list, values: list, timestamps: list):
        self.topic, self.partition = topic, partition
        self.offsets, self.keys, self.values, self.timestamps = offsets, keys, values, timestamps

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, position: int) -> FetchedRecord:
        if isinstance(position, slice):
            raise TypeError("RecordBatch does not slice")
        return FetchedRecord(self.topic, self.partition, self.offsets[position], self.keys[position],
                             self.values[position], self.timestamps[position])



def widen_pipe(connection) -> None:
    """Linux: 1 MiB pipe buffer (the default 64 KiB holds a tenth of a fetched batch). Best effort."""
    try:
        fcntl.fcntl(connection.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:
        pass
