"""``manifest.json``: the chain of checkpoint files and, per link, the offsets of the state it ends at.

Format 3 (written since the pending ids moved into the checkpoint files)::

    {"format": 3, "sequence": 12, "model_id": "...", "created_at": 1.7e9,
     "chain": [{"name": "base-00000009.ckpt", "sequence": 9, "bytes": 123, "offsets": [[topic, partition, next]],
                "event_count": 10, "topic_ids": {topic: id}}, {"name": "delta-00000010.seg", ...}, ...],
     "previous": [...the chain before the last compaction...],
     "offsets": ..., "event_count": ...}      # the last link's, for readers of the newest state

A link's ``topic_ids`` name the topics (KIP-516 ids) its offsets belong to, saved in the same atomic write,
so a topic deleted and created again under the same name is told apart (``streamer.io.kafka_source``).
The ids not yet in Redis (``Manifest.pending``, given to the sink on start) are not in this file: each checkpoint
file holds them at its state, a base whole and a segment as the change since the file before it
(:mod:`streamer.io.pending_state`), so a checkpoint writes what changed, not the whole list again.

Format 2 (delta checkpoints, before that) is the same with ``"pending": {"items": [...], ...}``: the ids not yet
in Redis at the newest link, rewritten whole at every checkpoint (5.9 MB with 300,000 neighbour lists due). It
loads (its files hold no pending member: the manifest's are used) and goes on in format 3; the next segment
then holds the pending ids whole.

Format 1 (one ``engine-<sequence>.ckpt`` named by ``state``) is read as a chain of one base: a directory
written by an older version loads unchanged and goes on with segments after it.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from streamer.errors import CheckpointError

__all__ = ["FORMAT", "MANIFEST", "Link", "Manifest", "read_manifest", "write_manifest"]

FORMAT = 3
READS = (1, 2, 3)
MANIFEST = "manifest.json"


@dataclass
class Link:
    """One file of the chain and what the state it ends at has learned."""

    name: str
    sequence: int
    bytes: int
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    event_count: int = 0
    topic_ids: dict[str, str] = field(default_factory=dict)  # topic -> the id its offsets belong to

    def to_dict(self) -> dict:
        return {"name": self.name, "sequence": self.sequence, "bytes": self.bytes, "event_count": self.event_count,
                "offsets": _offsets_list(self.offsets), "topic_ids": dict(sorted(self.topic_ids.items()))}

    @classmethod
    def from_dict(cls, raw: dict) -> "Link":
        return cls(str(raw["name"]), int(raw["sequence"]), int(raw["bytes"]), _offsets_dict(raw["offsets"]),
                   int(raw["event_count"]), {str(topic): str(ids) for topic, ids in raw.get("topic_ids", {}).items()})


def _pending(raw: dict) -> dict[str, list[str]]:
    return {str(kind): list(ids) for kind, ids in raw.get("pending", {}).items()}


def _offsets_list(offsets: dict) -> list:
    return [[topic, partition, offset] for (topic, partition), offset in sorted(offsets.items())]


def _offsets_dict(raw: list) -> dict[tuple[str, int], int]:
    return {(str(topic), int(partition)): int(offset) for topic, partition, offset in raw}


@dataclass
class Manifest:
    """The newest chain (``chain[0]`` a base, then segments), the previous one, and the model's identity."""

    sequence: int = 0
    chain: list[Link] = field(default_factory=list)
    previous: list[Link] = field(default_factory=list)
    model_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = 0.0
    pending: dict[str, list[str]] = field(default_factory=dict)  # not written here (format 3): see the module doc
    fell_back: bool = False  # loaded from an earlier link than the newest (a file was corrupt or missing)

    @property
    def offsets(self) -> dict[tuple[str, int], int]:
        return self.chain[-1].offsets if self.chain else {}

    @property
    def event_count(self) -> int:
        return self.chain[-1].event_count if self.chain else 0

    @property
    def topic_ids(self) -> dict[str, str]:
        return self.chain[-1].topic_ids if self.chain else {}

    def truncated(self, good: list[Link], previous: bool, pending: dict[str, list[str]]) -> "Manifest":
        """This manifest restored from ``good`` (a prefix of ``chain``, or of ``previous`` when ``previous``
        is False) with the ``pending`` ids of its last link; the sequence stays, so new files never reuse a name."""
        if previous:
            return Manifest(self.sequence, good, self.previous, self.model_id, self.created_at, pending,
                            len(good) < len(self.chain))
        return Manifest(self.sequence, good, [], self.model_id, self.created_at, pending, True)

    def to_json(self) -> bytes:
        return orjson.dumps({
            "format": FORMAT, "sequence": self.sequence, "model_id": self.model_id, "created_at": self.created_at,
            "chain": [link.to_dict() for link in self.chain], "previous": [link.to_dict() for link in self.previous],
            "offsets": _offsets_list(self.offsets), "event_count": self.event_count,
        }, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> "Manifest":
        try:
            raw = orjson.loads(data)
            if raw.get("format") == 1:  # one engine file: a chain of one base
                engine = Path(path).parent / str(raw["state"])
                size = engine.stat().st_size if engine.exists() else 0
                base = Link(str(raw["state"]), int(raw["sequence"]), size, _offsets_dict(raw["offsets"]),
                            int(raw["event_count"]))
                return cls(base.sequence, [base], [], str(raw["model_id"]), float(raw["created_at"]), _pending(raw))
            if raw.get("format") not in READS:
                raise CheckpointError(f"{path}: unknown manifest format {raw.get('format')!r} "
                                      f"(this version reads 1, 2 and 3)")
            chain = [Link.from_dict(link) for link in raw["chain"]]
            if not chain:
                raise ValueError("empty chain")
            return cls(int(raw["sequence"]), chain, [Link.from_dict(link) for link in raw.get("previous", [])],
                       str(raw["model_id"]), float(raw["created_at"]), _pending(raw))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{path}: corrupt checkpoint manifest ({error})") from error


def read_manifest(path: Path) -> Manifest:
    return Manifest.from_json(path.read_bytes(), path)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Temp file, fsync, rename over ``manifest.json``, fsync the directory: the commit point."""
    temporary = directory / f".{MANIFEST}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(manifest.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, directory / MANIFEST)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
