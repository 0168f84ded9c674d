"""Checkpoints: the engine state and the offsets it contains, written atomically together.

:class:`CheckpointStore` keeps ``engine-<sequence>.ckpt`` (``Trainer.save``, itself atomic) and a
``manifest.json`` naming it, with the next offset of every partition the state has learned and the ids
not yet published to Redis. The manifest is written to a temporary file, fsynced and renamed: that
rename is the commit point, so a kill at any moment leaves either the old or the new checkpoint.

:class:`Checkpoint` owns the order: flush the sinks (dead letters, Redis) → save the state with its
offsets → commit the offsets to Kafka. Offsets are committed only when Redis has every change; if Redis
is down the checkpoint is still saved (with the unpublished ids) but the commit waits.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson

from streamer.errors import CheckpointError
from streamer.logs import log_event

__all__ = ["Checkpoint", "CheckpointStore", "Manifest"]

logger = logging.getLogger("streamer.checkpoint")
FORMAT = 1
MANIFEST = "manifest.json"


@dataclass
class Manifest:
    sequence: int = 0
    state: str = ""
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    model_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    event_count: int = 0
    created_at: float = 0.0
    pending: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps({
            "format": FORMAT, "sequence": self.sequence, "state": self.state, "model_id": self.model_id,
            "offsets": [[topic, partition, offset] for (topic, partition), offset in sorted(self.offsets.items())],
            "event_count": self.event_count, "created_at": self.created_at, "pending": self.pending,
        }, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> "Manifest":
        try:
            raw = orjson.loads(data)
            if raw.get("format") != FORMAT:
                raise CheckpointError(f"{path}: unknown manifest format {raw.get('format')!r}")
            return cls(int(raw["sequence"]), str(raw["state"]),
                       {(str(topic), int(partition)): int(offset) for topic, partition, offset in raw["offsets"]},
                       str(raw["model_id"]), int(raw["event_count"]), float(raw["created_at"]),
                       {str(kind): list(ids) for kind, ids in raw.get("pending", {}).items()})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{path}: corrupt checkpoint manifest ({error})") from error


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class CheckpointStore:
    """A directory holding one engine checkpoint and its manifest."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def load(self, load_engine: Callable[[Path], object]) -> tuple[object | None, Manifest]:
        """``(engine, manifest)`` of the last checkpoint, or ``(None, fresh manifest)`` when there is none."""
        path = self.directory / MANIFEST
        for leftover in self.directory.glob(".*.tmp"):  # from a process killed mid-write
            leftover.unlink(missing_ok=True)
        if not path.exists():
            return None, Manifest()
        manifest = Manifest.from_json(path.read_bytes(), path)
        return load_engine(self.directory / manifest.state), manifest

    def save(self, engine, manifest: Manifest, offsets: dict, pending: dict[str, list[str]]) -> Manifest:
        """Write a new engine file, then atomically switch the manifest to it; old files are removed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        sequence = manifest.sequence + 1
        state = f"engine-{sequence:08d}.ckpt"
        engine.save(self.directory / state)
        updated = Manifest(sequence, state, dict(offsets), manifest.model_id, engine.event_count, time.time(),
                           pending)
        temporary = self.directory / f".{MANIFEST}.{os.getpid()}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(updated.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.directory / MANIFEST)
        _fsync_directory(self.directory)
        for old in self.directory.glob("engine-*.ckpt"):
            if old.name != state:
                old.unlink(missing_ok=True)
        return updated


class Checkpoint:
    """The commit order: flush sinks → persist state + offsets → commit offsets."""

    def __init__(self, store: CheckpointStore, manifest: Manifest, publish: Callable[[bool], bool],
                 dead_letters, source, pending: Callable[[], dict[str, list[str]]]):
        self._store = store
        self.manifest = manifest
        self._publish = publish
        self._dead_letters = dead_letters
        self._source = source
        self._pending = pending
        self._committed: dict | None = None
        self._saved_mark: tuple | None = None  # engine.change_mark when saved (None: unknown, e.g. after a restart)

    def commit(self, engine, force: bool = False) -> bool:
        """Run one checkpoint; True when the offsets were committed to Kafka.

        ``force`` asks the Redis flush to try even while it is backing off (rebalance, shutdown).
        """
        began = time.monotonic()
        published = self._publish(force)
        self._dead_letters.flush()
        offsets = dict(self._source.learned)
        mark = engine.change_mark
        unchanged = (self.manifest.sequence > 0 and offsets == self.manifest.offsets
                     and engine.event_count == self.manifest.event_count and mark == self._saved_mark)
        if unchanged and (not published or offsets == self._committed):
            return offsets == self._committed  # nothing new since the last checkpoint
        if not unchanged:
            self.manifest = self._store.save(engine, self.manifest, offsets, self._pending())
            self._saved_mark = mark
        if not published:
            log_event(logger, logging.WARNING, "checkpoint_saved_commit_deferred", sequence=self.manifest.sequence,
                      reason="redis unavailable", events=engine.event_count)
            return False
        committed = self._source.commit(offsets)
        if committed:
            self._committed = offsets
        log_event(logger, logging.INFO, "checkpoint", sequence=self.manifest.sequence, events=engine.event_count,
                  committed=committed, seconds=round(time.monotonic() - began, 3))
        return committed
