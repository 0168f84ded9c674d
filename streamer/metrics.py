"""Prometheus metrics of the daemon (own registry, so several daemons can live in one test process).

Counters: events learned, records dead-lettered (by reason), catalog updates, flushes and flush errors,
pairs replayed in spare time.
Gauges: items, open sessions, dirty items, consumer lag, last flush latency, lease held, replay debt.
Histogram: freshness — one sample per ingested poll batch and flush: the oldest produce time among the
batch's records → the flush that wrote the vectors it changed first (items already dirty keep their older
sample). A bounded window of recent freshness samples also gives exact p50/p99 for the status line.
Neighbour lists (docs/neighbours.md): ``streamer_neighbours_age_seconds`` (an item's list due → written),
``streamer_neighbours_due`` (lists due), ``streamer_neighbour_lists_written_total``.
Live quality (docs/live-quality.md), read from the daemon's LiveQuality at each scrape:
``streamer_live_hit_rate{model}`` (sliding window; NaN before the first sample), ``streamer_live_hits_total{model}``
``streamer_live_samples_total`` and ``streamer_live_skipped_total``.
"""

from __future__ import annotations

import math
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["FRESHNESS_BUCKETS", "Metrics"]

FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
                     10.0, 30.0, 60.0, 300.0)


class Metrics:
    """All metrics of one daemon; :mod:`streamer.health` serves ``registry`` on ``/metrics``."""

    def __init__(self, window: int = 100_000):
        self.registry = CollectorRegistry()
        registry = self.registry
        self.events = Counter("streamer_events_total", "events learned", registry=registry)
        self.dead_letters = Counter("streamer_dead_letters_total", "records sent to the dead-letter topic",
                                    ["reason"], registry=registry)
        self.catalog_updates = Counter("streamer_catalog_updates_total", "catalog updates applied",
                                       registry=registry)
        self.flushes = Counter("streamer_flushes_total", "successful flushes to Redis", registry=registry)
        self.flush_errors = Counter("streamer_flush_errors_total", "failed flushes to Redis", registry=registry)
        self.items_published = Counter("streamer_items_published_total", "item vectors written to Redis",
                                       registry=registry)
        self.checkpoints = Counter("streamer_checkpoints_total", "checkpoints saved", registry=registry)
        self.commits = Counter("streamer_commits_total", "offset commits", registry=registry)
        self.items = Gauge("streamer_items", "items the model knows", registry=registry)
        self.open_sessions = Gauge("streamer_open_sessions", "sessions still open", registry=registry)
        self.dirty_items = Gauge("streamer_dirty_items", "changed items not yet in Redis", registry=registry)
        self.lag = Gauge("streamer_consumer_lag", "messages behind the high watermark", registry=registry)
        self.flush_seconds = Gauge("streamer_last_flush_seconds", "duration of the last flush", registry=registry)
        self.lease_held = Gauge("streamer_lease_held", "1 when this daemon holds the namespace lease",
                                registry=registry)
        self.replay_debt = Gauge("streamer_replay_debt", "replay draws owed (replay_mode=spare), paid in spare time",
                                 registry=registry)
        self.replayed_pairs = Counter("streamer_replayed_pairs", "pairs replayed in spare time (replay_mode=spare)",
                                      registry=registry)
        self.freshness = Histogram("streamer_freshness_seconds", "produce time → vector written to Redis",
                                   buckets=FRESHNESS_BUCKETS, registry=registry)
        self.neighbours_age = Histogram("streamer_neighbours_age_seconds",
                                        "an item's change (its list due) → its neighbour list written to Redis",
                                        buckets=FRESHNESS_BUCKETS, registry=registry)
        self.lists_due = Gauge("streamer_neighbours_due", "neighbour lists due (changed items, lists holding a "
                               "released item), not yet rewritten", registry=registry)
        self.lists_written = Counter("streamer_neighbour_lists_written_total", "neighbour lists written to Redis",
                                     registry=registry)
        self._recent: deque[float] = deque(maxlen=window)
        self._recent_ages: deque[float] = deque(maxlen=window)
        self.live_quality = None  # a streamer.core.live_quality.LiveQuality, read at each scrape
        registry.register(_LiveQualityCollector(self))

    def observe_freshness(self, samples: list[float]) -> None:
        for sample in samples:
            self.freshness.observe(sample)
        self._recent.extend(samples)

    def observe_neighbours(self, ages: list[float]) -> None:
        """One age sample per neighbour list written (due → written)."""
        for age in ages:
            self.neighbours_age.observe(age)
        self.lists_written.inc(len(ages))
        self._recent_ages.extend(ages)

    def neighbours_age_quantiles(self, *quantiles: float) -> list[float | None]:
        """Exact quantiles of the recent list ages (None when there are none)."""
        return _quantiles(self._recent_ages, quantiles)

    def freshness_quantiles(self, *quantiles: float) -> list[float | None]:
        """Exact quantiles of the recent freshness window (None when there are no samples)."""
        return _quantiles(self._recent, quantiles)

    def clear_freshness_window(self) -> None:
        self._recent.clear()


class _LiveQualityCollector:
    """The live hit rates of ``metrics.live_quality`` at scrape time (nothing while it is None)."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def collect(self):
        live = self._metrics.live_quality
        if live is None:
            return
        rate = GaugeMetricFamily("streamer_live_hit_rate", "share of sampled live events whose item is in the "
                                 "top-10 of the session's previous item, over the sliding window", labels=["model"])
        hits = CounterMetricFamily("streamer_live_hits", "sampled live events that were hits", labels=["model"])
        for name, window in live.windows.items():
            rate.add_metric([name], math.nan if window.rate is None else window.rate)
            hits.add_metric([name], window.total_hits)
        samples = CounterMetricFamily("streamer_live_samples", "live events scored (sampled queries)")
        samples.add_metric([], live.windows["streamer"].total)
        skipped = CounterMetricFamily("streamer_live_skipped", "sampled live events not scored: the previous "
                                      "item's list was written before this daemon took over")
        skipped.add_metric([], live.skipped)
        yield from (rate, hits, samples, skipped)


def _quantiles(samples, quantiles) -> list[float | None]:
    ordered = sorted(samples)
    if not ordered:
        return [None for _ in quantiles]
    return [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in quantiles]
