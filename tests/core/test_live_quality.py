"""The live check's pure core: the sliding window, the seeded sampler, the bounded co-occurrence shadow."""

from __future__ import annotations

import numpy as np

from streamer.core.live_quality import BoundedSessions, CooccurrenceShadow, HitWindow, LiveQuality
from streamer.evaluation.baselines import CooccurrenceModel
from streamer.evaluation.protocol import SessionTracker
from tests.core.synthetic import clustered_events


def _random_log(events: int = 6000, items: int = 300, users: int = 80, seed: int = 3) -> list[tuple[str, str, float]]:
    """Users clicking Zipf-ish items, with session gaps now and then (so sessions start and end)."""
    random = np.random.default_rng(seed)
    ts, log = 0.0, []
    for _ in range(events):
        ts += float(random.choice([1.0, 30.0, 2500.0], p=[0.7, 0.28, 0.02]))
        item = min(items - 1, int(random.zipf(1.3)) - 1)
        log.append((f"u{int(random.integers(users))}", f"i{item}", ts))
    return log


def _protocol_pairs(log) -> list[tuple[str, str]]:
    """The protocol's queries over the whole log: previous session item -> item, when they differ."""
    tracker, pairs = SessionTracker(window=1), []
    for user, item, ts in log:
        previous = tracker.push(user, item, ts)
        if previous and previous[-1] != item:
            pairs.append((previous[-1], item))
    return pairs


def test_hit_window_keeps_only_the_last_outcomes_and_totals_since_the_start():
    window = HitWindow(3)
    assert window.rate is None
    for hit in (True, True, False, False):
        window.add(hit)
    assert (window.hits, len(window), window.rate) == (1, 3, 1 / 3)
    assert (window.total_hits, window.total) == (2, 4)
    window.add(True)
    window.add(True)  # the window is now False, True, True
    assert window.rate == 2 / 3


def test_at_rate_one_every_protocol_query_is_scored_and_nothing_else():
    log = _random_log()
    quality = LiveQuality(sample_rate=1.0, window=100_000, shadow_items=0)
    for start in range(0, len(log), 500):
        quality.observe(log[start:start + 500])
    assert quality.windows["streamer"].total == len(_protocol_pairs(log)) > 1000


def test_the_sampler_is_seeded_and_takes_about_the_sample_rate():
    log = _random_log()
    queries = len(_protocol_pairs(log))
    counts = []
    for seed in (7, 7, 8):
        quality = LiveQuality(sample_rate=0.3, window=10, shadow_items=0, seed=seed)
        counts.append(quality.observe(log))
    assert counts[0] == counts[1] != counts[2]
    spread = 5 * (queries * 0.3 * 0.7) ** 0.5  # five binomial standard deviations
    assert abs(counts[0] - 0.3 * queries) < spread


def test_streamer_is_scored_against_the_lists_published_before_the_batch():
    quality = LiveQuality(sample_rate=1.0, window=10, shadow_items=0)
    quality.published([("a", [f"x{n}" for n in range(10)] + ["b"])])  # b is 11th: not in the top 10
    quality.observe([("u", "a", 0.0), ("u", "b", 1.0)])
    quality.published([("a", ["b"]), ("c", ["d"])])
    quality.observe([("v", "a", 0.0), ("v", "b", 1.0), ("v", "c", 2.0), ("v", "d", 3.0)])
    quality.forget(["c"])
    quality.observe([("w", "c", 0.0), ("w", "d", 1.0), ("w", "e", 2.0)])  # c forgotten, e never published
    window = quality.windows["streamer"]
    assert (window.total_hits, window.total) == (2, 6)


def test_shadow_with_ample_bounds_ranks_exactly_like_the_protocol_baseline():
    log = _random_log()
    baseline, shadow = CooccurrenceModel(), CooccurrenceShadow(max_items=10_000, max_pairs=10_000)
    for start in range(0, len(log), 700):
        baseline.learn(log[start:start + 700])
        shadow.learn(log[start:start + 700])
    items = sorted({item for _, item, _ in log}) + ["never-seen"]
    def misses_as_none(rankings):  # [] (no pairs yet) and None (never seen) are both misses
        return [ranking or None for ranking in rankings]

    assert misses_as_none(shadow.rank(items, 10)) == misses_as_none(baseline.rank(items, 10))


def test_shadow_memory_is_bounded_in_items_pairs_and_sessions():
    log = _random_log(events=20_000, items=5000, users=2000)
    shadow = CooccurrenceShadow(max_items=200, max_pairs=8, max_sessions=150)
    shadow.learn(log)
    assert len(shadow.counts) <= 200
    assert max(map(len, shadow.counts.values())) <= 16
    assert len(shadow.sessions) <= 150
    assert shadow.pair_count <= 200 * 16


def test_shadow_keeps_the_most_frequent_partners_and_the_recent_items():
    shadow = CooccurrenceShadow(max_items=4, max_pairs=2)
    for round_ in range(20):
        shadow.count("a", ("b",))  # a-b: the frequent pair
        shadow.count("a", (f"rare{round_}",))
    assert shadow.rank(["a"], 1) == [["b"]]
    assert len(shadow.counts["a"]) <= 4
    assert list(shadow.counts)[-1] == f"rare{19}"  # the last counted item is the most recent
    assert len(shadow.counts) <= 4


def test_bounded_sessions_drop_the_least_recently_seen_user():
    sessions = BoundedSessions(max_keys=2)
    sessions.push("u1", "a", 0.0)
    sessions.push("u2", "a", 0.0)
    sessions.push("u1", "b", 1.0)  # u1 is now the most recent
    sessions.push("u3", "a", 1.0)  # u2 goes
    assert sessions.push("u1", "c", 2.0) == ("a", "b")
    assert sessions.push("u2", "b", 2.0) == ()


def test_cooc_is_scored_before_the_shadow_learns_the_batch_and_learns_after():
    events = clustered_events(clusters=3, items_per_cluster=5, sessions=300, length=6)
    quality = LiveQuality(sample_rate=1.0, window=100_000, shadow_items=1000, shadow_pairs=100)
    quality.observe(events[:6])
    assert quality.windows["cooc"].total_hits == 0  # nothing was learned before the first batch
    for start in range(6, len(events), 60):
        quality.observe(events[start:start + 60])
    cooc = quality.windows["cooc"]
    assert cooc.total == quality.windows["streamer"].total > 1000
    assert cooc.rate > 0.9  # 5 items per cluster: every partner is in the top 10 once seen
    assert quality.windows["streamer"].rate == 0.0  # nothing was published
    assert quality.status_fields()["live_hit_cooc"] == round(cooc.rate, 4)


def test_a_restarted_daemon_skips_queries_on_lists_it_did_not_write_until_it_writes_them():
    quality = LiveQuality(sample_rate=1.0, window=10, inherited=["a", "b"])
    quality.observe([("u", "a", 0.0), ("u", "b", 1.0), ("u", "c", 2.0)])  # a -> b and b -> c: lists unknown
    assert (quality.skipped, quality.windows["streamer"].total, quality.windows["cooc"].total) == (2, 0, 0)
    quality.published([("a", ["b"])])
    quality.observe([("v", "a", 3.0), ("v", "b", 4.0), ("v", "d", 5.0)])
    assert (quality.skipped, quality.windows["streamer"].total, quality.windows["streamer"].hits) == (3, 1, 1)
