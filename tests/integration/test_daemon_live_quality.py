"""The live hit-rate gauges against the real broker and redis-server: they exist and move with real hits.

Phase 1 teaches the daemon 25 clusters of 4 items. Phase 2a sends new sessions inside the clusters: the next
item is one of the previous item's 3 cluster mates, which lead its published list, so both gauges go up.
Phase 2b sends sessions that jump between clusters: pairs never seen, far down the published lists, so both
gauges (a window of 50 samples) fall. Every event is sampled (rate 1.0), so the sample count is exact.
"""

from __future__ import annotations

import logging
import math
import urllib.request

import numpy as np
import pytest

from streamer.keys import Keys
from streamer.localstack import free_port
from tests.core.synthetic import clustered_events
from tests.core.test_live_quality import _protocol_pairs
from tests.integration.daemon_support import DaemonThread, event_value, produce, settings_for, wait_for

pytestmark = pytest.mark.integration
CLUSTERS, ITEMS_PER_CLUSTER = 25, 4


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in text.splitlines()
                                                    if line.startswith("streamer_live_"))}


def _jumping_sessions(sessions: int, start: float, seed: int = 5) -> list[tuple[str, str, float]]:
    """Sessions of 6 items, each from another cluster than the one before."""
    random = np.random.default_rng(seed)
    events, ts = [], start
    for session in range(sessions):
        cluster = int(random.integers(CLUSTERS))
        for _ in range(6):
            cluster = (cluster + int(random.integers(1, CLUSTERS))) % CLUSTERS
            events.append((f"jumper{session}", f"c{cluster}_i{int(random.integers(ITEMS_PER_CLUSTER))}", ts))
            ts += 5.0
        ts += 4000.0
    return events


def _send(kafka_bootstrap: str, topic: str, events) -> None:
    produce(kafka_bootstrap, topic, ((user.encode(), event_value(user, item, ts)) for user, item, ts in events))


def test_live_hit_rate_gauges_follow_real_hits_and_misses(
        kafka_bootstrap, redis_url, redis_client, make_topic, unique_name, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="streamer")
    port = free_port()
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    teach = clustered_events(CLUSTERS, ITEMS_PER_CLUSTER, sessions=1500, length=6, seed=1)
    inside = [(f"new{user}", item, ts) for user, item, ts in
              clustered_events(CLUSTERS, ITEMS_PER_CLUSTER, sessions=40, length=6, seed=2, start=teach[-1][2] + 1e4)]
    jumps = _jumping_sessions(30, start=inside[-1][2] + 1e4)
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", metrics_port=port,
                            status_interval=0.5, neighbours_interval=0.1, neighbours_batch=100_000,
                            live_sample_rate=1.0, live_window=50, seed=3, vector_size=16, workers=1)
    samples = 0

    def sampled(events) -> float:
        nonlocal samples
        samples += len(_protocol_pairs(events))  # users differ between phases: sessions never span two
        wait_for(lambda: _scrape(port).get("streamer_live_samples_total") == samples, 120, f"{samples} samples")
        return _scrape(port)

    with DaemonThread(settings) as running:
        wait_for(lambda: running.daemon.active is not None, 60, "the daemon to become active")
        initial = _scrape(port)
        assert math.isnan(initial['streamer_live_hit_rate{model="streamer"}'])
        _send(kafka_bootstrap, topic, teach)
        sampled(teach)
        sink = running.daemon.active.sink
        wait_for(lambda: not sink.pending and not sink.neighbours_due, 60, "every neighbour list published")
        keys = Keys(unique_name)
        some = "c3_i1"
        assert {"c3_i0", "c3_i2", "c3_i3"} <= {item.decode() for item in redis_client.zrevrange(keys.neighbours(some),
                                                                                                  0, 9)}
        _send(kafka_bootstrap, topic, inside)
        after_inside = sampled(inside)
        _send(kafka_bootstrap, topic, jumps)
        after_jumps = sampled(jumps)
        wait_for(lambda: "live_hit_streamer=" in caplog.text, 10, "a status line with the live hit rates")

    for model in ("streamer", "cooc"):
        gauge = f'streamer_live_hit_rate{{model="{model}"}}'
        assert after_inside[gauge] > 0.8, (model, after_inside)
        assert after_jumps[gauge] < 0.3, (model, after_jumps)
        hits = f'streamer_live_hits_total{{model="{model}"}}'
        assert after_jumps[hits] >= after_inside[hits] > 0
    status = [line for line in caplog.text.splitlines() if "live_hit_streamer=" in line][-1]
    assert "live_hit_cooc=" in status and "live_samples=" in status


def test_a_restarted_daemon_starts_with_the_items_of_its_checkpoint_as_inherited(
        kafka_bootstrap, redis_url, make_topic, unique_name, tmp_path):
    """Which queries are skipped depends on how soon the restarted daemon rewrites the lists (in spare time), so
    this checks the start (every item inherited) and the accounting (each later query scored or skipped); that
    an inherited list is skipped until rewritten is unit-tested."""
    port = free_port()
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    teach = clustered_events(CLUSTERS, ITEMS_PER_CLUSTER, sessions=300, length=6, seed=1)
    later = [(f"later{user}", item, ts) for user, item, ts in
             clustered_events(CLUSTERS, ITEMS_PER_CLUSTER, sessions=20, length=6, seed=2, start=teach[-1][2] + 1e4)]
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", metrics_port=port,
                            neighbours_interval=0.1, neighbours_batch=100_000, live_sample_rate=1.0, seed=3,
                            vector_size=16, workers=1)
    with DaemonThread(settings):
        _send(kafka_bootstrap, topic, teach)
        wait_for(lambda: _scrape(port).get("streamer_live_samples_total") == len(_protocol_pairs(teach)), 120,
                 "every teaching event scored")
    with DaemonThread(settings) as running:
        wait_for(lambda: running.daemon.active is not None, 60, "the restarted daemon to become active")
        live = running.daemon.active.live
        assert live.inherited_at_start == len({item for _, item, _ in teach})
        assert live.inherited <= {item for _, item, _ in teach}  # shrinking as the lists are rewritten
        _send(kafka_bootstrap, topic, later)
        pairs = len(_protocol_pairs(later))

        def counted() -> float:
            metrics = _scrape(port)
            return metrics.get("streamer_live_samples_total", 0) + metrics.get("streamer_live_skipped_total", 0)

        wait_for(lambda: counted() == pairs, 120, "every later query scored or skipped")
