"""Publishes the engine's changed vectors to Redis: ``add_*()`` marks ids dirty, ``flush()`` writes them.

Writes are pipelined (``transaction=False``) batches of fenced Lua scripts: each script first checks
that the namespace lease still holds our value, so a fenced daemon writes nothing. They are idempotent
(``HSET``/``SET``/``DEL``; a replay overwrites). Dirty ids are sets (bounded by the item count) and
survive failed flushes, so while Redis is down training goes on and everything lands after reconnect.
When the Redis server restarted (a new ``run_id``, seen by the daemon's lease renewer even while idle),
:meth:`RedisSink.republish_all` queues every item and user again; each flush takes at most a batch of
the queue (:meth:`RedisSink.feed_republish`), so learning goes on meanwhile, and what is left of it is
pending in every checkpoint (a kill mid-way loses none).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry

from streamer.errors import StreamerError
from streamer.io.lease import FENCE_CHECK, Lease
from streamer.io.neighbour_lists import DueLists
from streamer.io.neighbour_lists import refresh as refresh_lists
from streamer.keys import DTYPE, FIELD_UPDATED_AT, FIELD_VECTOR, FIELD_VERSION, Keys, encode_vector, index_definition
from streamer.logs import log_event

__all__ = ["FencedError", "FlushResult", "RedisSink", "Snapshot", "connect_redis"]

logger = logging.getLogger("streamer.redis")
BATCH = 256

_WRITE_ITEMS = FENCE_CHECK + f"""
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], '{FIELD_VECTOR}', ARGV[2 * i - 1], '{FIELD_VERSION}', ARGV[2 * i],
             '{FIELD_UPDATED_AT}', ARGV[2])
end
return #KEYS - 1
"""
_DELETE = FENCE_CHECK + "for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end return #KEYS - 1\n"
_UNLIST = FENCE_CHECK + "for i = 2, #KEYS do redis.call('ZREM', KEYS[i], unpack(ARGV, 2)) end return #KEYS - 1\n"
_WRITE_USERS = FENCE_CHECK + """
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[2]) end
return #KEYS - 1
"""
_REPLACE_NEIGHBOURS = FENCE_CHECK + """
local a = 2
for i = 2, #KEYS do
  local n = tonumber(ARGV[a]); a = a + 1
  redis.call('DEL', KEYS[i])
  if n > 0 then redis.call('ZADD', KEYS[i], unpack(ARGV, a, a + 2 * n - 1)) end
  a = a + 2 * n
end
return #KEYS - 1
"""
_WRITE_META = FENCE_CHECK + "redis.call('HSET', KEYS[2], unpack(ARGV, 2)) return 1\n"


class FencedError(StreamerError):
    """Another daemon holds the namespace lease: this one must not write."""


@dataclass
class FlushResult:
    items: int = 0
    retired: int = 0
    users: int = 0
    seconds: float = 0.0
    freshness: list[float] = field(default_factory=list)  # one sample per ingested batch the flush wrote


@dataclass
class Snapshot:
    """One flush taken off the sink: the pipelined calls (vectors already encoded) and what they cover."""

    calls: list[tuple]
    stamps: dict[str, float | None]  # item -> produce time of its oldest change
    retired: list[str]
    users: list[str]
    seconds: float = 0.0  # time taken to build it
    sequence: int = 0  # 1, 2, ... in the order taken (the checkpoint waits for given ones)
    neighbours: list = field(default_factory=list)  # [(item, neighbour ids best first)] its calls replace
    version: int = 0  # the ``version``/``model_version`` its calls write


def connect_redis(settings) -> redis.Redis:
    """A lazily connecting client for ``settings.redis_url`` with its ACL/TLS options and short timeouts."""
    url = settings.redis_url
    timeout = settings.redis_timeout  # a hung server costs a thread this long (twice: one retry), never the loop
    options = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 2.0), "health_check_interval": 30,
               "retry": Retry(NoBackoff(), 1)}  # fail fast: the daemon's loop backs off and keeps training
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password:
        options["password"] = settings.redis_password
    if settings.redis_tls and url.startswith("redis://"):
        url = "rediss://" + url[len("redis://"):]
    if url.startswith("rediss://"):
        for name in ("ca_certs", "certfile", "keyfile"):
            value = getattr(settings, f"redis_tls_{name}")
            if value:
                options[f"ssl_{name}"] = value
    return redis.Redis.from_url(url, **options)


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
        self._scripts = {name: client.register_script(source) for name, source in (
            ("items", _WRITE_ITEMS), ("delete", _DELETE), ("users", _WRITE_USERS),
            ("neighbours", _REPLACE_NEIGHBOURS), ("meta", _WRITE_META), ("unlist", _UNLIST))}

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
        calls = self._item_calls(engine, items, now) + self._user_calls(engine, users)
        calls += self._neighbour_calls  # before the deletes: a list computed before its item's retire goes
        for start in range(0, len(retired), BATCH):
            chunk = retired[start:start + BATCH]
            calls.append(("delete", [key for item in chunk
                                     for key in (self._keys.item(item), self._keys.neighbours(item))], []))
        calls += self._unlist_calls(retired)
        calls.append(self._meta_call(engine, now))
        dirty = self.dirty
        stamps = {item: dirty.pop(item) for item in items}
        self.retired.difference_update(retired)
        self.users.difference_update(users)
        self._taken += 1
        snapshot = Snapshot(calls, stamps, retired, users, time.monotonic() - began, self._taken,
                            self._neighbour_lists, self.version_base + engine.event_count)
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

    def _item_calls(self, engine, items: list[str], now: float) -> list[tuple]:
        calls, version = [], self.version_base + engine.event_count
        for start in range(0, len(items), BATCH):
            keys, args = [], [now]
            found, vectors = engine.vectors_for(items[start:start + BATCH])
            vectors = np.ascontiguousarray(vectors, dtype="<f4")
            size = vectors.shape[1] * 4
            blob = vectors.tobytes()
            for index, item in enumerate(found):
                keys.append(self._keys.item(item))
                args.extend((blob[index * size:(index + 1) * size], version))
            if keys:
                calls.append(("items", keys, args))
        return calls

    def _user_calls(self, engine, users: list[str]) -> list[tuple]:
        calls = []
        for start in range(0, len(users), BATCH):
            keys, args = [], [self._user_ttl_ms]
            for user in users[start:start + BATCH]:
                vector = engine.user_vector(user)
                if vector is not None:
                    keys.append(self._keys.user(user))
                    args.append(encode_vector(vector))
            if keys:
                calls.append(("users", keys, args))
        return calls

    def _meta_call(self, engine, now: float) -> tuple:
        settings = engine.settings
        normalised = getattr(settings, "normalise", getattr(settings, "normalize", False))
        meta = {"vector_size": settings.vector_size, "dtype": DTYPE, "normalised": int(bool(normalised)),
                "model_id": self.model_id, "model_version": self.version_base + engine.event_count,
                "item_count": engine.item_count, "last_flush": now}
        return ("meta", [self._keys.meta], [value for pair in meta.items() for value in pair])

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
