"""One model = one writer: a renewed lease on ``{ns}:lease`` carrying a fencing token.

The lease value is ``<owner>:<token>`` where ``token`` comes from ``INCR {ns}:fence``, so every new
holder has a larger token than all before it. Every write of the sink runs in a Lua script that first
checks the lease still holds *our* value (:data:`FENCE_CHECK`), so a paused or partitioned old holder
can never overwrite the new holder's vectors. Locally, too, a holder that could not renew for a lease's
lifetime (Redis hung or unreachable) no longer counts on it: :meth:`Lease.could_have_expired` is true
from ``ttl`` after the last successful renewal was *sent*, and the sink renews (or re-acquires) first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable

from redis.exceptions import RedisError

from streamer.keys import Keys
from streamer.logs import log_event

__all__ = ["FENCE_CHECK", "Lease"]

logger = logging.getLogger("streamer.lease")

# KEYS[1] = lease key, ARGV[1] = holder value, ARGV[2] = ttl ms. Returns the new value or false.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return false end
if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return current end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[3] .. ':' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
#: Prefix of every fenced write script: KEYS[1] = lease key, ARGV[1] = holder value.
FENCE_CHECK = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end\n"


class Lease:
    """``acquire()`` / ``renew()`` / ``release()`` the namespace lease; ``value`` is the fencing value."""

    def __init__(self, client, keys: Keys, ttl_seconds: float, owner: str | None = None):
        self._client = client
        self._keys = keys
        self._ttl_ms = max(1000, int(ttl_seconds * 1000))
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.value: str | None = None
        self._valid_until = 0.0  # monotonic: the lease could have expired from then on
        self._lock = threading.Lock()  # the renewer and the publisher thread both renew
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def renew_interval(self) -> float:
        return self._ttl_ms / 3000.0

    @property
    def token(self) -> int | None:
        return int(self.value.rsplit(":", 1)[1]) if self.value else None

    def holder(self) -> str | None:
        current = self._client.get(self._keys.lease)
        return current.decode() if current is not None else None

    def could_have_expired(self) -> bool:
        """True once a lease's lifetime has passed since the last successful renewal was sent."""
        return time.monotonic() >= self._valid_until

    def acquire(self) -> bool:
        """Take the lease if it is free (or already ours); a new holder gets a new fencing token."""
        with self._lock:
            return self._take()

    def _take(self) -> bool:
        sent = time.monotonic()
        mine = self.value or f"{self.owner}:"
        value = self._acquire(keys=[self._keys.lease, self._keys.fence], args=[mine, self._ttl_ms, self.owner])
        if value is None:
            return False
        self.value = value.decode() if isinstance(value, bytes) else value
        self._valid_until = sent + self._ttl_ms / 1000.0
        return True

    def renew(self) -> bool:
        """Extend our lease; if it vanished (expired, or Redis restarted empty) try to take it again.

        Returns False when someone else holds it: we are fenced and must stop writing.
        """
        with self._lock:
            sent = time.monotonic()
            if self.value and self._renew(keys=[self._keys.lease], args=[self.value, self._ttl_ms]):
                self._valid_until = sent + self._ttl_ms / 1000.0
                return True
            previous, self.value = self.value, None
            if self._take():
                log_event(logger, logging.WARNING, "lease_reacquired", namespace=self._keys.namespace,
                          previous=previous, value=self.value)
                return True
            return False

    def release(self) -> None:
        with self._lock:
            if self.value:
                self._release(keys=[self._keys.lease], args=[self.value])
                self.value = None

    def release_within(self, timeout: float) -> bool:
        """:meth:`release` for at most ``timeout`` seconds (a stop does not wait on a hung Redis: a lease not
        released expires after its ttl); True when it was released. Errors are logged, not raised."""
        def attempt() -> None:
            try:
                self.release()
            except (RedisError, OSError) as error:
                log_event(logger, logging.WARNING, "lease_release_failed", error=repr(error),
                          note="the lease expires by itself")

        worker = threading.Thread(target=attempt, name="lease-release", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            log_event(logger, logging.WARNING, "lease_release_abandoned", seconds=timeout,
                      note="Redis did not answer; the lease expires by itself after its ttl")
        return not worker.is_alive() and self.value is None

    def wait(self, should_stop: Callable[[], bool], poll_seconds: float | None = None,
             on_retry: Callable[[Exception], None] | None = None) -> bool:
        """Block as a standby until the lease is ours (True) or ``should_stop()`` (False)."""
        poll_seconds = poll_seconds or self.renew_interval
        announced = 0.0
        while not should_stop():
            try:
                if self.acquire():
                    log_event(logger, logging.INFO, "lease_acquired", namespace=self._keys.namespace,
                              value=self.value)
                    return True
                if time.monotonic() - announced > 30.0:
                    announced = time.monotonic()
                    log_event(logger, logging.WARNING, "standby", namespace=self._keys.namespace,
                              holder=self.holder(), note="another daemon writes this namespace; waiting")
            except (RedisError, OSError) as error:
                if on_retry is None:
                    raise
                on_retry(error)
            _sleep_unless(should_stop, poll_seconds)
        return False


def _sleep_unless(should_stop: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not should_stop():
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
