"""Checkpoints: the engine state and the offsets it contains, written atomically together.

:class:`CheckpointStore` (:mod:`streamer.io.state_store`) keeps the state as a base snapshot plus delta
segments and a ``manifest.json`` naming them (:mod:`streamer.io.manifest`), each with the next offset of
every partition its state has learned and the ids not yet published to Redis. Renaming the manifest is the
commit point, so a kill at any moment leaves either the old or the new checkpoint.

:class:`Checkpoint` owns the order: flush the sinks (dead letters, Redis) → save the state with its
offsets → commit the offsets to Kafka. Offsets are committed only when Redis has every change; if Redis
is down or hung the checkpoint is still saved (with the unpublished ids, in flight included) but the
commit waits. The loop does not wait with it: the Redis flush submits snapshots to the publisher thread
and the commit follows when the snapshots it needs are written (:meth:`Checkpoint.settled`); only a
forced checkpoint (rebalance, shutdown) waits for them.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from streamer.io.manifest import MANIFEST, Link, Manifest
from streamer.io.state_store import CheckpointStore
from streamer.logs import log_event

__all__ = ["Checkpoint", "CheckpointStore", "Link", "Manifest", "MANIFEST"]

logger = logging.getLogger("streamer.checkpoint")


class Checkpoint:
    """The commit order: flush sinks → persist state + offsets → commit offsets.

    ``background``: the changed state is taken in the caller's thread and written on another one while
    learning goes on; :meth:`settle` (called by the loop every turn) links it once it is durable and only then
    commits its offsets. A forced checkpoint (stop, revocation) waits for its write and commits at once.

    In the background a segment is taken in two steps (:mod:`streamer.core.delta_early`): the checkpoint lists
    the rows changed so far and returns while they are copied on another thread; the next :meth:`settle` after
    the copy runs the checkpoint itself (flush, offsets, the rest of the delta), whose state is the one saved.
    """

    def __init__(self, store: CheckpointStore, manifest: Manifest, publish: Callable[[bool], set | None],
                 dead_letters, source, pending: Callable[[], dict[str, list[str]]], background: bool = False,
                 in_flight: Callable[[], set[int]] = set):
        self._store = store
        self.manifest = manifest
        self._publish = publish
        self._dead_letters = dead_letters
        self._source = source
        self._pending = pending
        self.background = background
        self._committed: dict | None = None
        self._saved_mark: tuple | None = None  # engine.change_mark when saved (None: unknown, e.g. after a restart)
        self._in_flight: tuple | None = None  # (PendingSave, offsets, published, began, mark) of a background write
        self._awaiting: tuple[dict, set[int], int] | None = None  # saved offsets, the snapshots their commit waits
        # for, the source's reread mark when the offsets were taken
        self._snapshots_in_flight = in_flight  # the Redis snapshots not settled yet
        self._preparing = None  # the engine whose next segment's rows are being copied (the first step)

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None or self._preparing is not None

    def commit(self, engine, force: bool = False) -> bool:
        """Run one checkpoint; True when the offsets were committed to Kafka (in the background mode a
        checkpoint that started a write returns False: :meth:`settle` commits).

        ``force`` asks the Redis flush to try even while it is backing off (rebalance, shutdown).
        """
        began = time.monotonic()
        published = self._publish(force)
        self._dead_letters.flush()
        if self._in_flight is not None:  # the previous write is linked first (it has long finished, usually)
            self._finish()
        offsets, mark = dict(self._source.learned), self._reread_mark()
        topic_ids = dict(getattr(self._source, "topic_ids", {}))  # the topics these offsets belong to
        engine_mark = engine.change_mark
        unchanged = (self.manifest.sequence > 0 and offsets == self.manifest.offsets
                     and engine.event_count == self.manifest.event_count and engine_mark == self._saved_mark
                     and topic_ids == self.manifest.topic_ids)
        if unchanged and (published is None or offsets == self._committed):
            return offsets == self._committed  # nothing new since the last checkpoint
        if unchanged:
            return self._commit_offsets(offsets, published, began, mark)
        background = self.background and not force
        if background and self._store.prepare(engine, self.manifest):  # the rows are copied off the loop first
            self._preparing = engine
            return False
        self._preparing = None
        save = self._store.begin(engine, self.manifest, offsets, self._pending(), background=background,
                                 topic_ids=topic_ids)
        self._saved_mark, self._in_flight = engine_mark, (save, offsets, published, began, mark)
        return self._finish() if not background or save.done() else False  # a base is written at once

    def settle(self) -> bool | None:
        """Link a background write that is durable and commit its offsets (True when committed); None while
        it is still being written or when there is none. Once a segment's rows are copied (the first step),
        the checkpoint itself runs here (None while its write goes on)."""
        if self._preparing is not None:
            if not self._store.prepared():
                return None
            engine, self._preparing = self._preparing, None
            committed = self.commit(engine)
            return None if not committed and self.in_flight else committed
        if self._in_flight is None or not self._in_flight[0].done():
            return None
        return self._finish()

    def _finish(self) -> bool:
        save, offsets, published, began, mark = self._in_flight
        self._in_flight = None
        try:
            self.manifest = save.finish()
        except BaseException:
            self._saved_mark = None  # not saved: the next checkpoint saves again (a base)
            raise
        return self._commit_offsets(offsets, published, began, mark)

    def _reread_mark(self) -> int:
        """Changes whenever the source reads a partition again from its beginning (a recreated topic)."""
        return getattr(self._source, "reread_mark", 0)

    def _commit_offsets(self, offsets: dict, published: bool, began: float, mark: int) -> bool:
        """``published`` (what ``publish(force)`` returned): the Redis snapshots the commit waits for (empty:
        Redis has every change), or None: changes not submitted yet, a later checkpoint commits."""
        if published is None:
            log_event(logger, logging.WARNING, "checkpoint_saved_commit_deferred", sequence=self.manifest.sequence,
                      reason="redis unavailable or slow", events=self.manifest.event_count)
            return False
        published = set(published) & self._snapshots_in_flight()  # some may be written while the state was
        if published:
            self._awaiting = (offsets, set(published), mark)  # committed by ``settled`` once they are written
            return False
        self._awaiting = None
        return self._commit(offsets, began, mark)

    def settled(self, sequence: int, written: bool) -> bool:
        """A Redis snapshot's write is over: commit the offsets that waited for it once all their snapshots
        are written (True when committed); a failed one drops the wait (its ids are pending again, and a
        later checkpoint commits)."""
        if self._awaiting is None or sequence not in self._awaiting[1]:
            return False
        offsets, waiting, mark = self._awaiting
        waiting.discard(sequence)
        if not written:
            self._awaiting = None
            return False
        if waiting:
            return False
        self._awaiting = None
        learned = self._source.learned
        if any(learned.get(partition, 0) < offset for partition, offset in offsets.items()):
            return False  # a partition was read again from its beginning meanwhile: these offsets are stale
        return self._commit(offsets, time.monotonic(), mark)

    def _commit(self, offsets: dict, began: float, mark: int) -> bool:
        """Commit ``offsets`` unless a partition was read again from its beginning since they were taken (a
        recreated topic; the reread is the source's ``reread_mark``): sent later, they would name the old
        topic's positions on the new one, and a restart would then read the new topic again (learned twice)
        or skip it. A later checkpoint commits."""
        if self._reread_mark() != mark:
            log_event(logger, logging.WARNING, "commit_dropped", sequence=self.manifest.sequence,
                      reason="a partition was read again from its beginning since these offsets were taken")
            return False
        committed = self._source.commit(offsets)
        if committed:
            self._committed = offsets
        log_event(logger, logging.INFO, "checkpoint", sequence=self.manifest.sequence, events=self.manifest.event_count,
                  committed=committed, seconds=round(time.monotonic() - began, 3),
                  bytes=self.manifest.chain[-1].bytes, file=self.manifest.chain[-1].name)
        return committed

    def close(self) -> None:
        """Abandon a background compaction in progress (the saved chain stays valid); a segment being written is
        waited for but not linked (its file is removed by the next save)."""
        if self._in_flight is not None and self._in_flight[0].writer is not None:
            self._in_flight[0].writer.thread.join()
        self._in_flight = self._preparing = None
        self._store.close()
