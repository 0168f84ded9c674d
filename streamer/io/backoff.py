"""Exponential backoff with one log line per failure, for the daemon's Redis and Kafka retries."""

from __future__ import annotations

import logging
import time

from streamer.logs import log_event

__all__ = ["MAX_BACKOFF", "Backoff"]

logger = logging.getLogger("streamer.daemon")
MAX_BACKOFF = 10.0


class Backoff:
    """Exponential backoff with a log line per failure: ``failed(error)`` sleeps, ``ready()`` says when."""

    def __init__(self, event: str):
        self.event, self.delay, self.retry_at, self.failures = event, 0.0, 0.0, 0

    def failed(self, error: Exception, sleep: bool = True, **fields) -> None:
        self.failures += 1
        self.delay = min(MAX_BACKOFF, max(0.25, self.delay * 2))
        self.retry_at = time.monotonic() + self.delay
        log_event(logger, logging.WARNING, self.event, error=repr(error), retry_in=self.delay, **fields)
        if sleep:
            time.sleep(self.delay)

    def ready(self) -> bool:
        return time.monotonic() >= self.retry_at

    def reset(self) -> bool:
        """Back to normal; True if there had been failures (so a 'recovered' line can be logged)."""
        had_failures = self.failures > 0
        self.delay, self.retry_at, self.failures = 0.0, 0.0, 0
        return had_failures
