"""The status line every few seconds, and the gauges it reads.

``status events_per_s=... lag=... items=... open_sessions=... dirty=... flush_ms=... replay_debt=... dlq=... lists_due=... list_age_p50=... list_age_p99=...``
then, with the live check on, ``live_hit_streamer=... live_hit_cooc=... live_samples=...``
"""

from __future__ import annotations

import logging
import time

from streamer.logs import log_event

__all__ = ["Status"]

logger = logging.getLogger("streamer.status")


class Status:
    """Reads the running daemon's state and logs one line per ``status_interval``."""

    def __init__(self, active, clock=time.monotonic):
        self._active = active
        self._clock = clock
        self._last_time = clock()
        self._last_events = active.engine.event_count
        self._next = self._last_time + active.settings.status_interval

    def snapshot(self) -> dict:
        active = self._active
        engine, sink, metrics = active.engine, active.sink, active.metrics
        now = self._clock()
        elapsed = max(1e-9, now - self._last_time)
        rate = (engine.event_count - self._last_events) / elapsed
        self._last_time, self._last_events = now, engine.event_count
        lag = active.source.lag()
        p50, p99 = metrics.freshness_quantiles(0.5, 0.99)
        age50, age99 = metrics.neighbours_age_quantiles(0.5, 0.99)
        fields = {
            "events_per_s": round(rate, 1), "lag": "?" if lag is None else lag, "events": engine.event_count,
            "items": engine.item_count, "open_sessions": engine.open_session_count, "dirty": len(sink.dirty),
            "flush_ms": round(active.last_flush_seconds * 1000, 1),
            "freshness_p50": "-" if p50 is None else round(p50, 3),
            "freshness_p99": "-" if p99 is None else round(p99, 3),
            "replay_debt": engine.replay_debt, "dlq": active.dead_letters.count,
            "lists_due": len(sink.neighbours_due),
            "list_age_p50": "-" if age50 is None else round(age50, 3),
            "list_age_p99": "-" if age99 is None else round(age99, 3),
        }
        if getattr(active, "live", None) is not None:
            fields.update(active.live.status_fields())
        metrics.items.set(fields["items"])
        metrics.open_sessions.set(fields["open_sessions"])
        metrics.dirty_items.set(fields["dirty"])
        metrics.replay_debt.set(fields["replay_debt"])
        metrics.lists_due.set(fields["lists_due"])
        if lag is not None:
            metrics.lag.set(lag)
        return fields

    def due(self, now: float) -> bool:
        return now >= self._next

    def report(self, now: float) -> None:
        self._next = now + self._active.settings.status_interval
        log_event(logger, logging.INFO, "status", **self.snapshot())
