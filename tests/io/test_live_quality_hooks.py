"""The daemon's hooks of the live check: ingest calls it before learning, config, metrics at scrape time."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from streamer import Trainer
from streamer.config import load_settings
from streamer.core.live_quality import LiveQuality
from streamer.errors import ConfigError
from streamer.ingest import Ingestor
from streamer.metrics import Metrics
from tests.io.test_ingest import NOW, FakeDeadLetters, FakeSink, _message


def test_ingest_shows_the_valid_events_to_the_observer_before_the_engine_learns_them():
    engine = Trainer(vector_size=8, seed=2, subsample=0.0)
    seen = []
    ingestor = Ingestor(engine, FakeDeadLetters(), FakeSink(), 1000, max_future_seconds=60.0, clock=lambda: NOW,
                        observe=lambda events: seen.append((engine.event_count, events)))
    ingestor.process([_message(0, {"user": "u", "item": "a", "ts": NOW - 5}), _message(1, b"{broken"),
                      _message(2, {"user": "u", "item": "b", "ts": NOW - 4, "type": "view"})])
    assert seen == [(0, [("u", "a", NOW - 5), ("u", "b", NOW - 4)])]
    assert engine.event_count == 2
    ingestor.process([_message(3, {"op": "upsert", "item": "c"})], catalog=True)
    assert len(seen) == 1  # catalog updates are not events


def test_live_settings_have_defaults_env_and_flags_and_refuse_nonsense():
    defaults = load_settings(environ={})
    assert 0 < defaults.live_sample_rate <= 1 and defaults.live_window > 0 and defaults.live_shadow_items > 0
    settings = load_settings(flags={"live_window": 50}, environ={"STREAMER_LIVE_SAMPLE_RATE": "1.0"})
    assert (settings.live_sample_rate, settings.live_window) == (1.0, 50)
    for flags in ({"live_sample_rate": 1.5}, {"live_window": 0}, {"live_shadow_items": -1}):
        with pytest.raises(ConfigError, match="live_"):
            load_settings(flags=flags, environ={})


def _sample(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name))
    return float(line.rsplit(" ", 1)[1])


def test_metrics_read_the_live_hit_rates_at_scrape_time():
    metrics = Metrics()
    assert b"streamer_live_hit_rate" not in generate_latest(metrics.registry)  # off: no series
    live = LiveQuality(sample_rate=1.0, window=10)
    metrics.live_quality = live
    text = generate_latest(metrics.registry).decode()
    assert math.isnan(_sample(text, 'streamer_live_hit_rate{model="streamer"}'))
    live.published([("a", ["b"])])
    live.observe([("u", "a", 0.0), ("u", "b", 1.0), ("u", "c", 2.0)])
    text = generate_latest(metrics.registry).decode()
    assert _sample(text, 'streamer_live_hit_rate{model="streamer"}') == 0.5
    assert _sample(text, 'streamer_live_hit_rate{model="cooc"}') == 0.0
    assert _sample(text, 'streamer_live_hits_total{model="streamer"}') == 1.0
    assert _sample(text, "streamer_live_samples_total") == 2.0
