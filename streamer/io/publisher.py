"""Writes flush snapshots to Redis on a thread of its own, so the loop keeps learning meanwhile.

The loop takes a :class:`~streamer.io.redis_sink.Snapshot` (ids, copied vectors, freshness stamps) with
``sink.snapshot(engine)`` and ``submit``s it; the publisher thread writes the snapshots in order
(``sink.write``). Outcomes come back through :meth:`Publisher.collect` (what finished so far) or
:meth:`Publisher.drain` (wait for everything submitted — before a checkpoint commits offsets). The loop
handles failures itself: a failed snapshot's ids go back to the dirty sets (``sink.restore``).
``submit`` never waits: the loop bounds what is in flight itself (:attr:`Publisher.in_flight`; while
Redis is slow or hung, changes wait in the sink's dirty sets, which coalesce by id).
"""

from __future__ import annotations

import queue
import threading
import time

from redis.exceptions import RedisError

from streamer.io.redis_sink import FencedError

__all__ = ["Publisher"]


class Publisher:
    """``submit(snapshot)``; ``collect()``/``drain()`` → ``[(snapshot, result or None, error or None)]``."""

    def __init__(self, sink, depth: int = 2):
        self._sink = sink
        self.depth = depth  # snapshots the loop keeps in flight at most (a checkpoint may add one)
        self._queue: queue.Queue = queue.Queue()
        self._outcomes: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.in_flight = 0  # submitted, outcome not collected yet (loop thread only)

    def submit(self, snapshot) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="redis-publisher", daemon=True)
            self._thread.start()
        self.in_flight += 1
        self._queue.put(snapshot)

    def collect(self) -> list[tuple]:
        """Outcomes finished so far, in submission order (never blocks)."""
        outcomes = []
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        self.in_flight -= len(outcomes)
        return outcomes

    def drain(self, timeout: float | None = None) -> list[tuple]:
        """Wait until every submitted snapshot is written (or failed), for at most ``timeout`` seconds (None:
        no limit); the outcomes collected. After a timeout :attr:`in_flight` says how many are still out
        (Redis hung: a rebalance or a stop does not wait for it, issue 16)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                done.wait(remaining)
        return self.collect()

    def close(self, timeout: float | None = None) -> list[tuple]:
        """Drain (for at most ``timeout`` seconds) and stop the thread; the outcomes not collected yet. A
        thread still inside a hung write is left behind (a daemon thread; its writes stay fenced)."""
        outcomes = self.drain(timeout)
        if self._thread is not None:
            self._queue.put(None)
            if not self.in_flight:
                self._thread.join()
            self._thread = None
        return outcomes

    def _run(self) -> None:
        while True:
            snapshot = self._queue.get()
            try:
                if snapshot is None:
                    return
                try:
                    self._outcomes.put((snapshot, self._sink.write(snapshot), None))
                except (RedisError, OSError, FencedError) as error:
                    self._outcomes.put((snapshot, None, error))
            finally:
                self._queue.task_done()
