"""Deferred replay: ``learn(events, replay=False)`` owes the replay draws, ``replay()`` pays them later."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.replay_debt import LOG_FACTOR
from streamer.core.learning import COUNTER_PAIRS, COUNTER_REPLAYED
from tests.core.synthetic import clustered_events

KNOBS = dict(vector_size=16, seed=5, replay_passes=2, replay_buffer=500, interleaved_passes=0)  # all deferred


def test_default_learn_replays_inline_and_owes_nothing():
    events = clustered_events(sessions=60)
    inline, explicit = Trainer(**KNOBS), Trainer(**KNOBS)
    inline.learn(events)
    explicit.learn(events, replay=True)
    assert inline.replay_debt == explicit.replay_debt == 0
    assert np.array_equal(inline.vectors()[1], explicit.vectors()[1])


def test_deferred_learn_accrues_the_inline_draws_as_debt_and_skips_their_training():
    events = clustered_events(sessions=20)
    deferred, without = Trainer(**KNOBS), Trainer(**{**KNOBS, "replay_passes": 0})
    deferred.learn(events, replay=False)
    without.learn(events)
    pairs = int(deferred._replay.counters[COUNTER_PAIRS])
    assert pairs > 0
    assert deferred.replay_debt == min(pairs * KNOBS["replay_passes"], deferred.replay_debt_limit)
    assert int(deferred._replay.counters[COUNTER_REPLAYED]) == 0  # nothing replayed yet
    assert np.array_equal(deferred.vectors()[1], without.vectors()[1])  # exactly one pass, same random draws


def test_interleaved_passes_still_run_inline_and_only_the_rest_is_owed():
    events = clustered_events(sessions=40)
    deferred = Trainer(**{**KNOBS, "replay_passes": 3, "interleaved_passes": 1})
    one_pass = Trainer(**{**KNOBS, "replay_passes": 1})
    deferred.learn(events, replay=False)
    one_pass.learn(events)
    pairs = int(deferred._replay.counters[COUNTER_PAIRS])
    assert deferred.replay_debt == 2 * pairs  # 3 passes, 1 interleaved
    assert deferred._replay.counters[COUNTER_REPLAYED] == one_pass._replay.counters[COUNTER_REPLAYED] > 0
    assert np.array_equal(deferred.vectors()[1], one_pass.vectors()[1])  # the interleaved pass, same draws
    assert deferred.replay() == 2 * pairs and deferred.replay_debt == 0


def test_interleaved_passes_covering_every_pass_owe_nothing():
    events = clustered_events(sessions=20)
    trainer, inline = Trainer(**{**KNOBS, "interleaved_passes": 5}), Trainer(**KNOBS)
    trainer.learn(events, replay=False)
    inline.learn(events)
    assert trainer.replay_debt == 0 and trainer._debt.log() is None
    assert np.array_equal(trainer.vectors()[1], inline.vectors()[1])


def test_debt_is_capped_at_passes_per_pair_the_backlog_log_can_hold():
    trainer = Trainer(**{**KNOBS, "replay_buffer": 10})
    trainer.learn(clustered_events(sessions=400), replay=False)
    assert trainer.replay_debt == trainer.replay_debt_limit == KNOBS["replay_passes"] * LOG_FACTOR * 10
    assert len(trainer._debt.log()) == LOG_FACTOR * 10  # a full reservoir sample of the backlog


def test_a_backlog_longer_than_the_buffer_is_replayed_whole_not_only_its_last_buffer():
    events = clustered_events(sessions=200)
    trainer = Trainer(**{**KNOBS, "replay_buffer": 50})
    trainer.learn(events, replay=False)
    logged = trainer._debt.log()
    assert len(logged) > 10 * 50  # far more than the ring buffer holds
    first_session_rows = {trainer._items.rows[item] for _, item, _ in events[:5]}
    assert first_session_rows & set(logged.ravel().tolist())  # the start of the backlog is still there
    owed = trainer.replay_debt
    assert trainer.replay() > 0 and trainer.replay_debt == 0
    assert trainer._debt.log() is None  # paid: the log is dropped
    assert owed > 0


def test_replay_pays_the_debt_in_parts_and_trains():
    trainer = Trainer(**KNOBS)
    trainer.learn(clustered_events(sessions=100), replay=False)
    owed = trainer.replay_debt
    before = trainer.vectors()[1].copy()
    assert trainer.replay(100) == 100
    assert trainer.replay_debt == owed - 100
    assert not np.array_equal(before, trainer.vectors()[1])
    assert trainer.replay() > 0
    assert trainer.replay_debt == 0
    assert trainer.replay() == 0  # nothing owed, nothing drawn


@pytest.mark.parametrize("workers", [1, 2])
def test_deferred_then_paid_replay_trains_as_many_replayed_pairs_as_inline(workers):
    events = clustered_events(sessions=30)
    knobs = {**KNOBS, "replay_buffer": 100_000, "workers": workers}
    inline, deferred = Trainer(**knobs), Trainer(**knobs)
    inline.learn(events)
    deferred.learn(events, replay=False)
    assert deferred.replay() == int(inline._replay.counters[COUNTER_REPLAYED]) > 0
    assert deferred.replay_debt == 0


def _owing(**knobs) -> Trainer:
    trainer = Trainer(**{**KNOBS, "replay_buffer": 100_000, **knobs})
    trainer.learn(clustered_events(sessions=200), replay=False)
    return trainer


def test_replay_on_two_threads_pays_every_draw_in_parts_and_counts_them():
    from streamer.core import parallel

    trainer = _owing()
    owed, before = trainer.replay_debt, trainer.vectors()[1].copy()
    assert owed > 2 * parallel.REPLAY_PART  # several parts
    assert trainer.replay(threads=2) == owed  # every logged pair is live: every draw trains
    assert trainer.replay_debt == 0 and int(trainer._replay.counters[COUNTER_REPLAYED]) == owed
    assert parallel._replay_parts.signatures  # the parallel kernel ran, not the one-thread loop
    after = trainer.vectors()[1]
    assert np.all(np.isfinite(after)) and not np.array_equal(before, after)


def test_replay_on_threads_learns_the_clusters_as_the_one_thread_replay_does():
    from tests.core.test_workers import cluster_precision

    one, two = _owing(), _owing()
    one.replay(threads=1)
    two.replay(threads=2)
    assert cluster_precision(two) > 0.9  # chance is 7/39 ~ 0.18
    assert cluster_precision(two) > cluster_precision(one) - 0.05


def test_replay_threads_skip_released_pairs_like_one_thread():
    trainer = _owing()
    logged = trainer._debt.log()
    logged[: len(logged) // 2] = -1  # half the backlog's pairs hold a released row
    owed = trainer.replay_debt
    trained = trainer.replay(threads=2)
    assert 0 < trained < owed and trainer.replay_debt == 0
    assert int(trainer._replay.counters[COUNTER_REPLAYED]) == trained


def test_each_part_draws_from_its_own_stream_seeded_from_stream_zero():
    """Only stream 0 advances, once per part (splitmix64 adds its constant per draw): the parts' draws depend on
    the state, not on which thread ran them, and a checkpoint holds all there is to the generator."""
    from streamer.core import parallel
    from streamer.core.random import _GOLDEN

    trainer, fresh = _owing(), _owing()
    trainer.replay(3 * parallel.REPLAY_PART, threads=2)
    with np.errstate(over="ignore"):
        assert trainer._rng[0] == fresh._rng[0] + np.uint64(3) * _GOLDEN


def test_owed_replay_draws_negatives_from_an_alias_table_kept_until_the_counts_drift():
    from streamer.core import replay_debt
    from streamer.core.learning import COUNTER_TOTAL

    trainer = _owing()
    trainer.replay(10)
    table = trainer._debt._table
    assert table is not None and table.shape[0] == np.count_nonzero(trainer._items.arrays.noise_weights)
    trainer.replay(10)
    assert trainer._debt._table is table  # nothing counted, nothing released: the same table
    counted = int(trainer._replay.counters[COUNTER_TOTAL])
    few = clustered_events(sessions=1, seed=9, start=1e6)
    assert len(few) < replay_debt.ALIAS_DRIFT * counted
    trainer.learn(few, replay=False)
    trainer.replay(10)
    assert trainer._debt._table is table  # a few events: within the drift
    trainer.learn(clustered_events(sessions=40, seed=10, start=2e6), replay=False)
    trainer.replay(10)
    assert trainer._debt._table is not table  # more than ALIAS_DRIFT of the counts: built again
    trainer.replay()
    assert trainer._debt._table is None  # paid: dropped


def test_a_release_rebuilds_the_alias_table_and_the_retired_row_is_never_drawn():
    from streamer.core.noise import alias_sample_many
    from streamer.core.random import new_state

    trainer = _owing()
    trainer.replay(10)
    before = trainer._debt._table
    item = trainer.item_ids()[0]
    row = trainer._items.rows[item]
    trainer.catalog([{"op": "retire", "item": item}])
    trainer.replay(10)
    table = trainer._debt._table
    assert table is not before and table.shape[0] == before.shape[0] - 1
    drawn = np.empty(200_000, np.int64)
    alias_sample_many(table, drawn, new_state(3), 0)
    assert row not in set(drawn.tolist())
    assert np.all(trainer._items.arrays.noise_weights[drawn] > 0)


def test_paying_the_debt_from_the_alias_table_learns_the_clusters_as_inline_replay_does():
    from tests.core.test_workers import cluster_precision

    inline = Trainer(**{**KNOBS, "replay_buffer": 100_000})
    inline.learn(clustered_events(sessions=200))
    owed = _owing()
    owed.replay()
    assert cluster_precision(owed) > 0.9  # chance is 7/39 ~ 0.18
    assert cluster_precision(owed) > cluster_precision(inline) - 0.05
