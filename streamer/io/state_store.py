"""The checkpoint directory: a base snapshot plus delta segments, compacted in the background.

Files (all written with :func:`streamer.core.persistence.write_archive`: temp file, fsync, rename, fsync the
directory; zip members carry CRC-32s):

- ``base-<sequence>.ckpt``: the whole engine state (the ``Trainer.save`` format; a version 1 directory's
  ``engine-<sequence>.ckpt`` is read as one);
- ``delta-<sequence>.seg``: what changed since the previous file of the chain (:mod:`streamer.core.delta`);
- ``manifest.json``: the chain (base, then segments in order), each link with the offsets and event count of
  the state it ends at, and the previous chain. Renaming it is the commit point.

Each file also holds the sink's pending ids at its state: a base whole, a segment what changed since the file
before it (:mod:`streamer.io.pending_state`).

A checkpoint writes one segment (cost: the rows changed since the last one). When the segments reach
``compact_ratio`` of the base (or ``MAX_SEGMENTS``), a new base is written on a background thread from a
snapshot taken right after a segment: the small parts are copied, the item arrays are read live, and the rows
that change while they are written are exactly the ``DIRTY_STATE`` rows of the next segments, which the new
chain keeps. The manifest switches to the new base at a later checkpoint, once the base is durable; the
previous chain's files stay until the switch after that, so a corrupt base still has a fallback.

Loading verifies every file; a corrupt or missing segment ends the chain there: the state and offsets of the
last good link are returned (``manifest.fell_back``), logged as ``checkpoint_fallback``, and the daemon
re-reads Kafka from those offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from streamer.core import delta
from streamer.core.persistence import read_archive, read_member, trainer_state, write_archive
from streamer.errors import CheckpointError
from streamer.io import pending_state
from streamer.io.manifest import MANIFEST, Link, Manifest, read_manifest, write_manifest
from streamer.logs import log_event

__all__ = ["CheckpointStore", "MAX_SEGMENTS"]

logger = logging.getLogger("streamer.checkpoint")
MAX_SEGMENTS = 64  # restore reads at most this many segments after the base


class CheckpointStore:
    """A directory holding one engine state as a chain of files and the manifest naming it."""

    def __init__(self, directory: str | Path, compact_ratio: float = 1.0):
        self.directory = Path(directory)
        self.compact_ratio = compact_ratio
        self._needs_base = False  # a segment could not be written: its changes were taken, so the next is a base
        self._compaction: _BackgroundWrite | None = None
        self._tracked = None  # the engine whose changes the chain follows (loaded or saved here)
        self._buffers: dict = {}  # a segment's gathered rows, reused by the next one (delta.collect)
        self._writing: _BackgroundWrite | None = None  # the segment write reading those buffers
        self._pending: dict | None = None  # pending ids at the chain's last file (None: not known from the files)
        self._early: tuple[dict, threading.Thread] | None = None  # the next segment's rows being gathered (prepare)

    # ---- loading ------------------------------------------------------------------------------------------

    def load(self, load_engine: Callable[[Path], object]) -> tuple[object | None, Manifest]:
        """``(engine, manifest)`` of the newest consistent state, or ``(None, fresh manifest)`` when there is none."""
        path = self.directory / MANIFEST
        for leftover in self.directory.glob(".*.tmp"):  # from a process killed mid-write
            leftover.unlink(missing_ok=True)
        if not path.exists():
            return None, Manifest()
        manifest = read_manifest(path)
        chains = [manifest.chain] + ([manifest.previous] if manifest.previous else [])
        for number, chain in enumerate(chains):
            try:
                engine = load_engine(self.directory / chain[0].name)
                pending, known = _replay_pending(manifest.pending, read_member(self.directory / chain[0].name,
                                                                               pending_state.MEMBER))
            except CheckpointError as error:
                log_event(logger, logging.ERROR, "checkpoint_base_unusable", file=chain[0].name, error=str(error),
                          fallback="previous chain" if number + 1 < len(chains) else "none")
                if number + 1 == len(chains):
                    raise
                continue
            good, pending, known = self._apply_segments(engine, chain, pending, known)
            delta.start_tracking(engine)
            restored = manifest.truncated(good, previous=number == 0, pending=pending)
            self._pending = pending if known else None
            if restored.fell_back:
                # the pending ids of the lost files are unknown (a Redis restart's republishing, say): all again
                restored.pending = dict(pending, republish=engine.item_ids())
                log_event(logger, logging.ERROR, "checkpoint_fallback", sequence=restored.sequence,
                          events=restored.event_count, lost_files=len(chain) - len(good),
                          note="re-reading Kafka from the offsets of this state; every item is published again")
            self._needs_base = number > 0  # the previous chain's segments may be gone: start a new chain
            self._tracked = engine
            return engine, restored
        raise CheckpointError(f"{path}: no usable checkpoint")  # not reached: the last chain raises

    def _apply_segments(self, engine, chain: list[Link], pending: dict, known: bool) -> tuple[list[Link], dict, bool]:
        """Apply the chain's segments in order: the links that were applied (the base first) and the pending ids
        at the last one (``known``: from the files, not from an old manifest)."""
        good = [chain[0]]
        for link in chain[1:]:
            path = self.directory / link.name
            try:
                meta, arrays = read_archive(path, delta.FORMAT, delta.READS)
                after = _replay_pending(pending, read_member(path, pending_state.MEMBER), known)
                delta.apply(engine, meta, arrays)
            except (CheckpointError, KeyError, TypeError, ValueError, IndexError) as error:
                log_event(logger, logging.ERROR, "checkpoint_segment_unusable", file=link.name, error=str(error))
                break
            good.append(link)
            pending, known = after
        return good, pending, known

    # ---- saving -------------------------------------------------------------------------------------------

    def save(self, engine, manifest: Manifest, offsets: dict, pending: dict[str, list[str]],
             topic_ids: dict[str, str] | None = None) -> Manifest:
        """Write a segment (a base when there is no chain yet), then switch the manifest to it atomically."""
        return self.begin(engine, manifest, offsets, pending, background=False, topic_ids=topic_ids).finish()

    def begin(self, engine, manifest: Manifest, offsets: dict, pending: dict[str, list[str]],
              background: bool = True, topic_ids: dict[str, str] | None = None) -> "PendingSave":
        """Take what changed now (in the caller's thread: the state it describes is this one) and write it on a
        background thread; ``finish()`` waits for it and switches the manifest. Learning may go on meanwhile:
        what it changes goes to the next segment. A base (no chain yet, or after a failed write) is written here."""
        self.directory.mkdir(parents=True, exist_ok=True)
        sequence = manifest.sequence + 1
        early = self._take_early()
        if not manifest.chain or self._needs_base or engine is not self._tracked:
            self.close()  # a compaction of the old chain is of no use any more
            name = f"base-{sequence:08d}.ckpt"
            size = write_archive(self.directory / name, *trainer_state(engine),
                                 members={pending_state.MEMBER: pending_state.encode(pending, None)})
            delta.start_tracking(engine)
            self._needs_base, self._tracked = False, engine
            link = Link(name, sequence, size, dict(offsets), engine.event_count, dict(topic_ids or {}))
            return PendingSave(self, manifest, link, pending, None, base=True)
        name = f"delta-{sequence:08d}.seg"
        if self._writing is not None:  # it reads the buffers the next delta is gathered into
            self._writing.thread.join()
        meta, arrays = delta.collect(engine, self._buffers, early)
        link = Link(name, sequence, 0, dict(offsets), engine.event_count, dict(topic_ids or {}))
        self._maybe_compact(engine, manifest, link, sum(value.nbytes for value in arrays.values()), pending)
        previous = self._pending  # the linked chain's last file's: this segment holds the change from them
        writer = self._writing = _BackgroundWrite(self.directory / name, (meta, arrays),
                                                  members=lambda: {pending_state.MEMBER:
                                                                   pending_state.encode(pending, previous)})
        if not background:
            writer.thread.join()
        return PendingSave(self, manifest, link, pending, writer)

    def prepare(self, engine, manifest: Manifest) -> bool:
        """Start the next segment's first step (:mod:`streamer.core.delta_early`): list the rows changed so far
        (in the caller's thread) and copy them on another thread while learning goes on; ``begin`` then takes
        the rest. False (nothing started) when the next checkpoint is a base or a first step is under way."""
        if self._early is not None or not manifest.chain or self._needs_base or engine is not self._tracked:
            return False
        if self._writing is not None:  # it reads the buffers the rows are gathered into
            self._writing.thread.join()
        part = delta.take_rows(engine)
        thread = threading.Thread(target=delta.gather_rows, args=(part, self._buffers), name="segment-rows",
                                  daemon=True)
        thread.start()
        self._early = (part, thread)
        return True

    def prepared(self) -> bool:
        """True when no first step is under way or its rows are copied (``begin`` will not wait for them)."""
        return self._early is None or not self._early[1].is_alive()

    def _take_early(self) -> dict | None:
        """The first step's part, its copy waited for (None when there is none)."""
        early, self._early = self._early, None
        if early is not None:
            early[1].join()
            if early[0]["gathered"] is None:  # the copy failed: its rows' bits were cleared, a base saves them
                self._needs_base = True
        return early[0] if early is not None else None

    def _switch_to_compacted(self, manifest: Manifest) -> Manifest:
        """A finished background base becomes the chain's start: base, then the segments written after it."""
        compaction = self._compaction
        if compaction is None or not compaction.done.is_set():
            return manifest
        self._compaction = None
        if compaction.error is not None:
            log_event(logger, logging.WARNING, "compaction_failed", error=str(compaction.error))
            return manifest
        chain = manifest.chain
        kept = [link for link in chain if link.sequence > compaction.link.sequence]
        if len(kept) == len(chain):  # the chain it compacted is gone (a new base was written meanwhile)
            return manifest
        older = [link for link in chain if link.sequence <= compaction.link.sequence]
        log_event(logger, logging.INFO, "compaction_done", base=compaction.link.name, bytes=compaction.link.bytes,
                  seconds=round(compaction.seconds, 3), segments_folded=len(older) - 1)
        return Manifest(manifest.sequence, [compaction.link] + kept, older, manifest.model_id, manifest.created_at,
                        manifest.pending)

    def _maybe_compact(self, engine, manifest: Manifest, link: Link, estimate: int, pending: dict) -> None:
        """Start a background base from the state of segment ``link`` (taken just now) when the segments have
        grown large; it replaces the chain up to ``link`` once both are durable."""
        if self._compaction is not None or not manifest.chain:
            return
        base, segments = manifest.chain[0], manifest.chain[1:]
        if (sum(segment.bytes for segment in segments) + estimate < self.compact_ratio * base.bytes
                and len(segments) + 1 < MAX_SEGMENTS):
            return
        name = f"base-{link.sequence:08d}.ckpt"
        self._compaction = _BackgroundWrite(self.directory / name, trainer_state(engine, snapshot=True),
                                            Link(name, link.sequence, 0, link.offsets, link.event_count,
                                                 link.topic_ids),
                                            members=lambda: {pending_state.MEMBER: pending_state.encode(pending, None)})

    def _remove_unreferenced(self, manifest: Manifest) -> None:
        keep = {link.name for link in manifest.chain + manifest.previous}
        if self._compaction is not None:
            keep.add(self._compaction.link.name)
        for pattern in ("base-*.ckpt", "delta-*.seg", "engine-*.ckpt"):
            for path in self.directory.glob(pattern):
                if path.name not in keep:
                    path.unlink(missing_ok=True)

    def wait_for_compaction(self, timeout: float | None = None) -> bool:
        """Block until a background base in progress is written (True when none is left running)."""
        compaction = self._compaction
        return compaction is None or compaction.done.wait(timeout)

    def close(self) -> None:
        """Abandon a background base in progress (its temporary file is removed; the chain stays valid) and a
        first step of a segment (its rows' changes were taken: the next checkpoint is a base)."""
        if self._early is not None:
            self._take_early()
            self._needs_base = True
        compaction, self._compaction = self._compaction, None
        if compaction is not None:
            compaction.cancel.set()
            compaction.thread.join()


class PendingSave:
    """A checkpoint file being written; ``finish()`` waits for it, then links it into the manifest (the commit
    point) and returns the new manifest. A failed write raises there (and the next checkpoint is a base)."""

    def __init__(self, store: CheckpointStore, manifest: Manifest, link: Link, pending: dict, writer, base=False):
        self.store, self.manifest, self.link, self.pending, self.writer, self.base = \
            store, manifest, link, pending, writer, base

    def done(self) -> bool:
        return self.writer is None or self.writer.done.is_set()

    def finish(self) -> Manifest:
        store, manifest, link = self.store, self.manifest, self.link
        if self.writer is not None:
            self.writer.thread.join()
            if self.writer.error is not None:
                store._needs_base = True
                store.close()
                raise self.writer.error
            link.bytes = self.writer.link.bytes
        chain, previous = ([], manifest.chain or manifest.previous) if self.base else (list(manifest.chain),
                                                                                      manifest.previous)
        updated = Manifest(link.sequence, chain + [link], previous, manifest.model_id, time.time(), self.pending)
        updated = store._switch_to_compacted(updated)
        write_manifest(store.directory, updated)
        store._pending = self.pending  # the next segment holds the change from these
        store._remove_unreferenced(updated)
        return updated


class _BackgroundWrite:
    """An archive written on its own thread; ``done`` is set when it is durable (or failed: ``error``)."""

    def __init__(self, path: Path, state: tuple[dict, dict], link: Link | None = None,
                 members: Callable[[], dict[str, bytes]] = dict):
        link = link or Link(path.name, 0, 0)
        self.path, self.link, self.state, self.members = path, link, state, members
        self.done, self.cancel = threading.Event(), threading.Event()
        self.error: Exception | None = None
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, name="compaction", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        try:
            self.link.bytes = write_archive(self.path, *self.state, cancelled=self.cancel.is_set,
                                            members=self.members())
        except (CheckpointError, OSError, ValueError) as error:  # raised by finish() / logged by the switch
            self.error = error
        finally:
            self.state = self.members = None
            self.seconds = time.monotonic() - began
            self.done.set()



def _replay_pending(pending: dict, data: bytes | None, known: bool = False) -> tuple[dict, bool]:
    """The pending ids after a file (``data``: its member, None for a file written before it, whose pending ids
    were the manifest's) and whether they are known from the files."""
    if data is None:
        return pending, False
    try:
        replayed, whole = pending_state.replay(pending, data)
        return replayed, known or whole
    except (ValueError, TypeError, KeyError, AttributeError) as error:  # orjson.JSONDecodeError is a ValueError
        raise CheckpointError(f"corrupt pending ids ({error})") from None
