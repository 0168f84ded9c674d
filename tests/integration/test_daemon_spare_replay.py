"""Spare-time replay (``replay_mode=spare``): replay deferred under load, the owed part paid once the stream is idle."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from streamer import Trainer
from streamer.spare_time import SpareTimeReplay
from streamer.config import load_settings
from streamer.core.learning import COUNTER_PAIRS, COUNTER_REPLAYED
from streamer.datasets import load_events
from streamer.io.checkpoint import CheckpointStore
from tests.integration.daemon_support import DaemonThread, event_value, produce, settings_for, wait_for

KNOBS = {"seed": 3, "workers": 1, "replay_passes": 3, "replay_buffer": 1_000_000, "vector_size": 16}  # 2 interleaved


def _loop_state(lag, waiting=False):
    state = SimpleNamespace(settings=load_settings(flags={"max_poll_records": 500}, environ={}),
                            source=SimpleNamespace(lag=lambda: lag, has_waiting=lambda: waiting))
    state._spare_time = lambda polled: SpareTimeReplay._spare_time(state, polled)
    return state


def test_keeping_up_is_a_short_poll_with_nothing_waiting_and_no_backlog():
    assert SpareTimeReplay._keeping_up(_loop_state(3), 40)
    assert not SpareTimeReplay._keeping_up(_loop_state(3), 0)  # nothing polled: nothing to learn
    assert not SpareTimeReplay._keeping_up(_loop_state(0), 500)  # a full poll: under load, replay is deferred
    assert not SpareTimeReplay._keeping_up(_loop_state(20_000), 40)  # a short poll, but far behind the broker
    assert not SpareTimeReplay._keeping_up(_loop_state(None), 40)  # lag unknown
    assert not SpareTimeReplay._keeping_up(_loop_state(3, waiting=True), 40)  # fetched batches wait for the loop


def test_spare_time_is_an_empty_poll_or_a_short_one_with_no_backlog():
    assert SpareTimeReplay._spare_time(_loop_state(None), 0)
    assert SpareTimeReplay._spare_time(_loop_state(3), 40)
    assert SpareTimeReplay._spare_time(_loop_state(20_000), 0)  # far behind, but nothing fetched: the loop would wait
    assert not SpareTimeReplay._spare_time(_loop_state(0), 500)  # a full poll: the backlog goes first
    assert not SpareTimeReplay._spare_time(_loop_state(20_000), 40)  # a short poll, but far behind the broker
    assert not SpareTimeReplay._spare_time(_loop_state(None), 40)  # lag unknown: only an empty poll counts
    assert not SpareTimeReplay._spare_time(_loop_state(3, waiting=True), 40)  # fetched batches wait for the loop
    assert not SpareTimeReplay._spare_time(_loop_state(None, waiting=True), 0)


def _spare_state(debt, replay_threads=0):
    """A loop state with a fake engine owing ``debt`` draws: what ``_replay_owed`` / ``_take_replayed`` touch."""
    calls = SimpleNamespace(replay=[], taken=[], follows=[])

    def replay(max_pairs, threads=None):
        calls.replay.append(threads)
        paid = min(max_pairs, state.engine.replay_debt)
        state.engine.replay_debt -= paid
        return paid

    state = SimpleNamespace(
        settings=load_settings(flags={"replay_threads": replay_threads, "replay_slice": 5.0}, environ={}),
        engine=SimpleNamespace(replay_debt=debt, replay=replay), replayed_pairs=0, replayed_untaken=False,
        last_spare_take=float("-inf"), spare_take_seconds=0.0,
        metrics=SimpleNamespace(replayed_pairs=SimpleNamespace(inc=lambda _: None)),
        ingestor=SimpleNamespace(take_changed=lambda follow=True: calls.follows.append(follow) or {"moved"},
                                 followed_within=lambda seconds: False),
        sink=SimpleNamespace(add_items=lambda items, produced_at: calls.taken.append(items)))
    return state, calls


def test_owed_replay_is_paid_on_the_configured_threads():
    state, calls = _spare_state(debt=2500, replay_threads=2)
    SpareTimeReplay._replay_owed(state)
    assert state.engine.replay_debt == 0 and state.replayed_pairs == 2500
    assert calls.replay and set(calls.replay) == {2}  # every chunk on the daemon's replay_threads
    assert load_settings(flags={}, environ={}).replay_threads == 1  # default: the one-thread path (served quality)


def test_what_replay_moved_is_taken_as_its_cost_allows_while_a_debt_is_owed_and_soon_once_it_is_paid(monkeypatch):
    from streamer import spare_time

    clock = [100.0]
    monkeypatch.setattr(spare_time.time, "monotonic", lambda: clock[0])
    state, calls = _spare_state(debt=10)

    def costly_take(follow=True):
        clock[0] += 0.5  # a take of a whole moving catalog
        return {"moved"}

    state.ingestor.take_changed = costly_take
    state.replayed_untaken = True
    SpareTimeReplay._take_replayed(state)  # the first take comes at once
    assert calls.taken == [{"moved"}] and state.spare_take_seconds == 0.5
    state.replayed_untaken = True
    clock[0] += spare_time.SPARE_TAKE_INTERVAL + 0.5  # past the idle interval, not yet 0.5 s / OWING_TAKE_SHARE
    assert 0.5 / spare_time.OWING_TAKE_SHARE > spare_time.SPARE_TAKE_INTERVAL + 1.0
    SpareTimeReplay._take_replayed(state)
    assert len(calls.taken) == 1 and state.replayed_untaken
    state.engine.replay_debt = 0  # paid: its last moves go now
    SpareTimeReplay._take_replayed(state)
    assert len(calls.taken) == 2 and not state.replayed_untaken


def test_a_cheap_take_while_owing_comes_every_spare_take_interval(monkeypatch):
    from streamer import spare_time

    clock = [100.0]
    monkeypatch.setattr(spare_time.time, "monotonic", lambda: clock[0])
    state, calls = _spare_state(debt=10)
    for _ in range(3):
        state.replayed_untaken = True
        SpareTimeReplay._take_replayed(state)
        clock[0] += spare_time.SPARE_TAKE_INTERVAL
    assert len(calls.taken) == 3  # a small catalog's takes cost nothing: served as closely as before


def test_while_owing_the_index_follows_the_takes_at_most_every_publish_max_age_and_again_once_paid(tmp_path):
    from streamer.ingest import Ingestor

    clock = [100.0]
    engine = SimpleNamespace(replay_debt=10, take_changed=lambda *args, follow=True: calls.follows.append(follow) or set())
    state, calls = _spare_state(debt=10)
    state.engine = engine
    max_age = state.settings.publish_max_age
    state.ingestor = Ingestor(engine, None, None, 1 << 20, None, clock=lambda: clock[0],
                              publish_rule=(0.02, max_age))
    state.ingestor.take_changed()  # a take while learning (the burst) follows
    for _ in range(3):  # spare-time takes within max_age of it do not
        clock[0] += max_age / 3 - 0.1
        state.replayed_untaken, state.last_spare_take = True, float("-inf")
        SpareTimeReplay._take_replayed(state)
    clock[0] += 0.5  # max_age since the last take that followed
    state.replayed_untaken, state.last_spare_take = True, float("-inf")
    SpareTimeReplay._take_replayed(state)
    clock[0] += 1.0
    engine.replay_debt = 0
    state.replayed_untaken, state.last_spare_take = True, float("-inf")
    SpareTimeReplay._take_replayed(state)  # paid: the index follows at once
    assert calls.follows == [True, False, False, False, True, True]


def test_while_owing_lists_are_refreshed_as_their_cost_allows_and_never_starve(monkeypatch):
    from streamer import spare_time

    clock = [100.0]
    monkeypatch.setattr(spare_time.time, "monotonic", lambda: clock[0])
    refreshes = []

    def refresh(cost):
        refreshes.append(cost)
        clock[0] += cost

    state = SimpleNamespace(settings=load_settings(flags={}, environ={}))
    interval = state.settings.neighbours_interval
    state._refresh_neighbours = lambda: refresh(0.1)
    assert SpareTimeReplay._refresh_lists(state, 100.0, paying=False) == 100.0 + interval  # not owing: as set
    paced = SpareTimeReplay._refresh_lists(state, 200.0, paying=True)
    assert paced == pytest.approx(200.0 + 0.1 / spare_time.OWING_LISTS_SHARE)
    state._refresh_neighbours = lambda: refresh(0.001)  # cheap: at least OWING_LISTS_INTERVAL apart
    assert SpareTimeReplay._refresh_lists(state, 300.0, paying=True) == 300.0 + max(interval,
                                                                                     spare_time.OWING_LISTS_INTERVAL)
    state._refresh_neighbours = lambda: refresh(5.0)  # a costly refresh: the next one still comes (bounded)
    assert SpareTimeReplay._refresh_lists(state, 400.0, paying=True) == 400.0 + spare_time.OWING_LONGEST
    assert len(refreshes) == 4


def test_a_checkpoint_keeps_what_the_threshold_held_back_pending_so_a_restart_after_a_kill_publishes_it():
    from streamer.flushing import Flushing

    sink = SimpleNamespace(pending_snapshot=lambda: {"items": ["b", "d"], "retired": ["x"], "neighbours": ["b"]})
    state = SimpleNamespace(sink=sink, engine=SimpleNamespace(held_back=lambda: ["c", "a", "b"]),
                            ingestor=SimpleNamespace(holding=True))
    assert Flushing._pending_for_checkpoint(state) == {"items": ["a", "b", "c", "d"], "retired": ["x"],
                                                       "neighbours": ["b"]}
    state.ingestor.holding = False  # nothing held since the last take_waiting (idle, or a stop)
    assert Flushing._pending_for_checkpoint(state)["items"] == ["b", "d"]


def test_an_idle_loop_publishes_what_the_threshold_held_back_and_a_busy_or_owing_one_does_not():
    state, calls = _spare_state(debt=0)
    waiting = []
    state.ingestor = SimpleNamespace(holding=True, take_changed=lambda follow=True: {"moved"},
                                     take_waiting=lambda: waiting.append(1) or {"held", "moved"})
    SpareTimeReplay._take_replayed(state, spare=False)  # busy: only the threshold's takes
    state.engine.replay_debt = 5
    SpareTimeReplay._take_replayed(state, spare=True)  # owing: replay still moves them
    assert not waiting
    state.engine.replay_debt = 0
    state.replayed_untaken = True
    SpareTimeReplay._take_replayed(state, spare=True)
    assert waiting == [1] and calls.taken[-1] == {"held", "moved"} and not state.replayed_untaken


@pytest.mark.integration
def test_owed_replay_is_paid_when_the_stream_goes_idle(kafka_bootstrap, redis_url, make_topic, unique_name, tmp_path,
                                                       data_root):
    rows = load_events("diginetica")[:20_000]
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    produce(kafka_bootstrap, topic, ((user.encode(), event_value(user, item, ts)) for user, item, ts in rows))
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", **KNOBS)
    assert settings.replay_mode == "spare"  # the default

    with DaemonThread(settings) as running:
        wait_for(lambda: running.daemon.active and running.daemon.active.engine.event_count == len(rows), 120,
                 "every event learned")
        active = running.daemon.active
        engine = active.engine
        wait_for(lambda: engine.replay_debt == 0, 60, "the owed replay to be paid while idle")
        learned_pairs = int(engine._replay.counters[COUNTER_PAIRS])
        # every draw inline replay would have made was made (nothing released: all pairs live): the owed ones in
        # spare time, the others interleaved (interleaved_passes) or inline (batches learned while keeping up)
        assert int(engine._replay.counters[COUNTER_REPLAYED]) == 3 * learned_pairs > 0
        assert 0 < active.replayed_pairs < 3 * learned_pairs
        metrics = running.daemon.metrics
        assert metrics.replayed_pairs._value.get() == active.replayed_pairs
        assert active.status.snapshot()["replay_debt"] == 0
        assert metrics.replay_debt._value.get() == 0  # the gauge follows the status line
        wait_for(lambda: not active.sink.pending, 30, "the replayed vectors to be flushed")
        assert running.alive
        replayed = int(engine._replay.counters[COUNTER_REPLAYED])
    # the stop's checkpoint holds the paid replay (offsets and event count did not change while it was paid)
    stored, _ = CheckpointStore(tmp_path / "state").load(Trainer.load)
    assert stored.replay_debt == 0
    assert int(stored._replay.counters[COUNTER_REPLAYED]) == replayed


@pytest.mark.integration
def test_an_idle_daemon_publishes_what_its_publish_threshold_held_back(kafka_bootstrap, redis_url, redis_client,
                                                                       make_topic, unique_name, tmp_path, data_root):
    """With a threshold no negative sample reaches (0.5) and a staleness bound far away (1 hour), the moved items
    wait while the stream flows; once the daemon is idle with nothing owed, Redis holds the engine's vectors."""
    from tests.integration.daemon_support import read_item_vectors

    rows = load_events("diginetica")[:5_000]
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    produce(kafka_bootstrap, topic, ((user.encode(), event_value(user, item, ts)) for user, item, ts in rows))
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, tmp_path / "state", **KNOBS,
                            publish_threshold=0.5, publish_max_age=3600.0)
    with DaemonThread(settings) as running:
        wait_for(lambda: running.daemon.active and running.daemon.active.engine.event_count == len(rows), 120,
                 "every event learned")
        active = running.daemon.active
        wait_for(lambda: active.engine.replay_debt == 0 and not active.replayed_untaken and not active.ingestor.holding
                 and not active.sink.pending and not active.publisher.in_flight, 60, "an idle daemon, all flushed")
        ids, vectors = active.engine.vectors()
        served = read_item_vectors(redis_client, unique_name)
        assert running.alive
    assert set(served) == set(ids)
    for item, vector in zip(ids, vectors):
        assert np.array_equal(served[item], vector), item
