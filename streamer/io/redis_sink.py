"""Publishes the engine's changed vectors to Redis: ``add_*()`` marks ids dirty, ``flush()`` writes them.

Writes are pipelined (``transaction=False``) batches of fenced Lua scripts: each script first checks
that the namespace lease still holds our value, so a fenced daemon writes nothing. They are idempotent
(``HSET``/``SET``/``DEL``; a replay overwrites). Dirty ids are sets (bounded by the item count) and
survive failed flushes, so while Redis is down training goes on and everything lands after reconnect.
When the Redis server restarted (a new ``run_id``, seen by the daemon's lease renewer even while idle),
:meth:`RedisSink.republish_all` queues every item and user again; each flush takes at most a batch of
the queue (:meth:`RedisSink.feed_republish`), so learning goes on meanwhile, and what is left of it is
pending in every checkpoint (a kill mid-way loses none). The scripts, the snapshot and the connection are in
:mod:`streamer.io.redis_writes`.
"""

from __future__ import annotations

import logging
import time

import redis
from redis.exceptions import ResponseError

from streamer.io.lease import Lease
from streamer.io.neighbour_lists import DueLists
from streamer.io.neighbour_lists import refresh as refresh_lists
from streamer.io.redis_writes import (BATCH, SCRIPTS, FencedError, FlushResult, Snapshot, connect_redis, item_calls,
                                     meta_call, user_calls)
from streamer.keys import Keys, index_definition
from streamer.logs import log_event

__all__ = ["FencedError", "FlushResult", "RedisSink", "Snapshot", "connect_redis"]

logger = logging.getLogger("streamer.redis")


class RedisSink:
    """The vector sink: ``add_items/add_retired/add_users`` then ``flush(engine)``."""

    def __init__(self, client: redis.Redis, keys: Keys, lease: Lease, user_ttl: float = 86400.0,
                 neighbours_count: int = 20, model_id: str = ""):
        self._client, self._keys, self._lease = client, keys, lease
        self._user_ttl_ms = int(user_ttl * 1000)
        self._neighbours_count = neighbours_count
        self.model_id = model_id
        self.dirty: dict[str, float] = {}          # item -> produce time of its oldest unpublished change
        self.retired: set[str] = set()
        self.users: set[str] = set()
        self.neighbours_due = DueLists()  # item -> when due, changes, urgent (streamer.io.neighbour_lists)
        self.holders: set[str] = set()  # items whose published list holds a released item (ZREM at the next flush)
        self.last_flush: float | None = None
        self.in_flight_snapshots: dict[int, Snapshot] = {}  # taken, not settled yet, by sequence
        self._taken = 0  # snapshots taken so far
        self._neighbour_calls: list[tuple] = []  # refreshed lists waiting for the next snapshot
        self._neighbour_lists: list = []
        self.on_neighbours = None  # called with [(item, neighbour ids best first), ...] once they are written
        self.republish: list[str] = []  # items to publish again after a Redis restart, fed in batches
        self.version_base = 0  # added to the event count in ``version``/``model_version`` (see continue_versions)
        self.versions = None  # a VersionCeiling (streamer.io.version_ceiling): raised before a version is written
        self._scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}

    # -- marking --------------------------------------------------------------------------------
    def add_items(self, items, produced_at: float | None, urgent: bool = False) -> None:
        """Mark ``items`` dirty; ``produced_at`` None (a change not caused by new events, e.g. spare-time
        replay) gives no freshness sample unless an event changes the item again before the flush.
        Their neighbour lists are due too (``urgent``: a catalog upsert, rewritten at once)."""
        dirty, retired = self.dirty, self.retired
        items = list(items)
        for item in items:
            retired.discard(item)
            if dirty.get(item) is None:
                dirty[item] = produced_at
        if self._neighbours_count:
            self.neighbours_due.mark(items, time.time(), urgent)

    def add_lists_due(self, items) -> None:
        """Items whose neighbour list holds a released item: the next flush removes the released items from
        these lists (``ZREM``, with their own keys' deletion) and the lists are due for a rewrite."""
        if self._neighbours_count:
            items = list(items)
            self.holders.update(items)
            self.neighbours_due.mark(items, time.time())

    def _unlist_calls(self, retired: list[str]) -> list[tuple]:
        """``ZREM`` the retired ids from the lists that hold them (they are rewritten later, as due)."""
        if not retired or not self.holders:
            return []
        holders, self.holders = sorted(self.holders), set()
        return [("unlist", [self._keys.neighbours(item) for item in holders[start:start + BATCH]], members)
                for start in range(0, len(holders), BATCH)
                for members in (retired[offset:offset + 1000] for offset in range(0, len(retired), 1000))]

    def add_retired(self, items) -> None:
        for item in items:
            self.dirty.pop(item, None)
            self.neighbours_due.pop(item, None)
            self.retired.add(item)

    def add_users(self, users) -> None:
        if self._user_ttl_ms:
            self.users.update(users)

    def republish_all(self, items, users) -> None:
        """The Redis server restarted (empty): queue every item (vector and neighbour list) and user again."""
        self.republish = [item for item in items if item not in self.dirty]
        self.add_users(users)

    def feed_republish(self, limit: int) -> int:
        """Mark up to ``limit`` queued items dirty (no freshness sample: no new event); how many."""
        if not self.republish:
            return 0
        chunk = self.republish[-limit:]
        del self.republish[-limit:]
        self.add_items(chunk, None)
        return len(chunk)

    @property
    def in_flight(self) -> int:
        return len(self.in_flight_snapshots)

    @property
    def unsubmitted(self) -> bool:
        """Changes not in any snapshot yet (a checkpoint cannot commit on the snapshots in flight alone)."""
        return bool(self.dirty or self.retired or self.users)

    @property
    def pending(self) -> int:
        return (len(self.dirty) + len(self.retired) + len(self.users) + len(self.republish)
                + len(self._neighbour_lists) + self.in_flight)

    def pending_snapshot(self) -> dict[str, list[str]]:
        """Ids not yet in Redis, in flight included, for the checkpoint (a checkpoint saved while Redis is
        down or hung loses none, and a kill before the snapshots in flight are written neither)."""
        flying = self.in_flight_snapshots.values()
        items = set(self.dirty).union(self.republish, *(snapshot.stamps for snapshot in flying))
        retired = self.retired.union(*(snapshot.retired for snapshot in flying))
        neighbours = dict.fromkeys(item for snapshot in flying for item, _ in snapshot.neighbours)
        neighbours.update(dict.fromkeys(item for item, _ in self._neighbour_lists))
        neighbours.update(dict.fromkeys(self.neighbours_due))
        return {"items": sorted(items), "retired": sorted(retired), "neighbours": list(neighbours)}

    def restore_pending(self, pending: dict[str, list[str]]) -> None:
        """The ids a checkpoint held as pending; ``republish`` (every item, after a fallback to an older state,
        whose lost files' pending ids are unknown) is queued and fed in batches like a Redis restart's."""
        self.add_items(pending.get("items", ()), time.time())
        self.republish = [item for item in pending.get("republish", ()) if item not in self.dirty]
        self.add_retired(pending.get("retired", ()))
        if self._neighbours_count:
            self.neighbours_due.mark(pending.get("neighbours", ()), time.time())

    def continue_versions(self, event_count: int) -> int:
        """Make ``version`` and meta ``model_version`` continue above what this model already published: a
        daemon restarted from a checkpoint older than its last flushes (a kill -9 between checkpoints)
        would otherwise write smaller versions. Reads meta once at start, and the durable bound of
        :attr:`versions` (which also covers a Redis that restarted empty); returns the base."""
        if self.versions is not None:  # first: it holds when Redis does not answer
            self.version_base = max(self.version_base, self.versions.base(event_count))
        model_id, published = self._client.hmget(self._keys.meta, "model_id", "model_version")
        if model_id is not None and model_id.decode() == self.model_id and published is not None:
            self.version_base = max(self.version_base, int(float(published)) + 1 - event_count, 0)
        return self.version_base

    def server_id(self) -> str | None:
        """The Redis server's ``run_id`` (a new one after every restart); called by the lease renewer."""
        return self._client.info("server").get("run_id")

    # -- writing --------------------------------------------------------------------------------
    def flush(self, engine) -> FlushResult:
        """Write every dirty vector, retire and user vector, then the meta hash, in one pipeline.

        Raises on Redis errors (the dirty sets are kept) and :class:`FencedError` when fenced.
        """
        snapshot = self.snapshot(engine)
        written = False
        try:
            result = self.write(snapshot)
            written = True
            return result
        finally:
            self.settled(snapshot, written)

    def snapshot(self, engine) -> "Snapshot":
        """Take the pending ids off the dirty sets with their vectors copied now (``write`` may run on
        another thread while the engine learns on); ``restore`` puts them back if the write fails."""
        began = time.monotonic()
        now = time.time()
        items, retired, users = list(self.dirty), sorted(self.retired), list(self.users)
        version = self.version_base + engine.event_count
        calls = item_calls(self._keys, engine, items, now, version) + user_calls(self._keys, engine, users,
                                                                               self._user_ttl_ms)
        calls += self._neighbour_calls  # before the deletes: a list computed before its item's retire goes
        for start in range(0, len(retired), BATCH):
            chunk = retired[start:start + BATCH]
            calls.append(("delete", [key for item in chunk
                                     for key in (self._keys.item(item), self._keys.neighbours(item))], []))
        calls += self._unlist_calls(retired)
        calls.append(meta_call(self._keys, engine, now, self.model_id, version))
        dirty = self.dirty
        stamps = {item: dirty.pop(item) for item in items}
        self.retired.difference_update(retired)
        self.users.difference_update(users)
        self._taken += 1
        snapshot = Snapshot(calls, stamps, retired, users, time.monotonic() - began, self._taken,
                            self._neighbour_lists, version)
        self._neighbour_calls, self._neighbour_lists = [], []
        self.in_flight_snapshots[snapshot.sequence] = snapshot
        return snapshot

    def write(self, snapshot: "Snapshot") -> FlushResult:
        """Execute a snapshot's writes (thread-safe: touches no sink state but ``last_flush``)."""
        began = time.monotonic()
        if self.versions is not None:
            self.versions.cover(snapshot.version)  # on disk before Redis has it: versions never go back
        self._execute(snapshot.calls)
        written_at = time.time()
        stamps = set(snapshot.stamps.values())  # one per ingested batch: its oldest produce time
        stamps.discard(None)
        self.last_flush = written_at
        return FlushResult(items=len(snapshot.stamps), retired=len(snapshot.retired), users=len(snapshot.users),
                           seconds=snapshot.seconds + time.monotonic() - began,
                           freshness=[max(0.0, written_at - stamp) for stamp in stamps])

    def settled(self, snapshot: "Snapshot", written: bool) -> None:
        """A snapshot's write is over (on the loop's thread); not ``written``: its ids are pending again."""
        self.in_flight_snapshots.pop(snapshot.sequence, None)
        if not written:
            self.restore(snapshot)
        elif snapshot.neighbours and self.on_neighbours is not None:
            self.on_neighbours(snapshot.neighbours)

    def restore(self, snapshot: "Snapshot") -> None:
        """After a failed write: its ids are pending again (newer changes keep their place)."""
        dirty = self.dirty
        for item, stamp in snapshot.stamps.items():
            if item in dirty:
                newer = dirty[item]
                dirty[item] = stamp if newer is None else newer if stamp is None else min(stamp, newer)
            elif item not in self.retired:
                dirty[item] = stamp
        self.retired.update(item for item in snapshot.retired if item not in dirty)
        self.users.update(snapshot.users)
        self.neighbours_due.mark([item for item, _ in snapshot.neighbours if item not in self.retired], time.time())

    def refresh_neighbours(self, engine, limit: int, budget_seconds: float = 0.1, max_wait: float = 30.0,
                           only: list[str] | None = None) -> list[float]:
        """Rewrite due ``{ns}:nn:{id}`` lists (most urgent first, :mod:`streamer.io.neighbour_lists`) for up to
        ``budget_seconds``; the rest stay due. Returns the age of each list written (due → written, seconds)."""
        if not self._neighbours_count:
            self.neighbours_due.clear()
            return []
        return refresh_lists(self, engine, self._neighbours_count, limit, budget_seconds, max_wait, only)

    @property
    def keys(self) -> Keys:
        return self._keys

    def queue_lists(self, calls: list[tuple], lists: list) -> None:
        """Neighbour-list writes for the next snapshot (the loop never waits on Redis); ``lists``: the
        ``(item, neighbour ids)`` they write, passed to ``on_neighbours`` once written."""
        self._neighbour_calls.extend(calls)
        self._neighbour_lists.extend(lists)

    @property
    def lists_waiting(self) -> int:
        """Neighbour lists computed and not in a snapshot yet."""
        return len(self._neighbour_lists)

    def execute(self, calls: list[tuple]) -> None:
        """Run ``(script, keys, args)`` calls in one fenced pipeline (see ``_execute``)."""
        self._execute(calls)

    def create_index(self, vector_size: int) -> bool:
        """``FT.CREATE`` over the item hashes; False (and a log line) when the server has no search module."""
        try:
            self._client.execute_command(*index_definition(self._keys, vector_size))
        except ResponseError as error:
            text = str(error).lower()
            if "already exists" in text:
                return True
            log_event(logger, logging.WARNING, "index_not_created", index=self._keys.index, error=str(error))
            return False
        log_event(logger, logging.INFO, "index_created", index=self._keys.index, dim=vector_size)
        return True

    def _execute(self, calls: list[tuple]) -> None:
        """One pipeline (``transaction=False``) of fenced scripts; on a lost lease renew once or raise. A
        lease that could have expired (no renewal got through for its lifetime) is renewed before writing."""
        if self._lease.could_have_expired() and not self._lease.renew():
            raise FencedError(f"namespace {self._keys.namespace!r} is leased by {self._lease.holder()!r}")
        for attempt in range(2):
            pipeline = self._client.pipeline(transaction=False)
            for name, keys, args in calls:
                self._scripts[name](keys=[self._keys.lease] + keys, args=[self._lease.value or ""] + args,
                                    client=pipeline)
            if -1 not in pipeline.execute():
                return
            if attempt == 0 and self._lease.renew():
                continue
            raise FencedError(f"namespace {self._keys.namespace!r} is leased by {self._lease.holder()!r}")
