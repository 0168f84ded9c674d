"""One background thread per Trainer: a compiled call trains batch k while the caller prepares batch k+1.

``Trainer.learn`` spends about a quarter of its time in Python (validating records, mapping ids to rows)
and the rest in compiled calls that release the GIL. Running each compiled call on this thread lets the
preparation of the next batch overlap it, as gensim's job producer thread overlaps its worker threads.
Calls still run strictly one after another, in stream order, on the same arrays: the result is the one
the caller's thread would have computed. The caller must :meth:`settle` (wait for the call in flight)
before it touches anything the compiled code reads or writes (array growth, releasing rows, reading
state) and before ``learn`` returns, so nothing is in flight outside ``learn``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

__all__ = ["Overlap"]


class Overlap:
    """At most one call in flight; ``settle`` waits for it and runs its ``finish`` in the caller's thread."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._flight: tuple[Future, Callable[[Any], None]] | None = None

    @property
    def busy(self) -> bool:
        return self._flight is not None

    def start(self, work: Callable[[], Any], finish: Callable[[Any], None]) -> None:
        """Settle the call in flight, then run ``work`` on the background thread; ``finish(result)`` at settle."""
        self.settle()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamer-learn")
        self._flight = (self._executor.submit(work), finish)

    def settle(self) -> None:
        """Wait for the call in flight (re-raising its error) and run its ``finish``; no-op when idle."""
        if self._flight is None:
            return
        future, finish = self._flight
        self._flight = None
        finish(future.result())

    def close(self) -> None:
        """Settle and stop the thread (a new one starts on the next ``start``)."""
        self.settle()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
