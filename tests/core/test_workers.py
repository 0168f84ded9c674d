"""workers > 1: serial bookkeeping as with one worker, Hogwild SGNS updates in parallel."""

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.learning import COUNTER_PAIRS, WORK_BLOCKS, WORK_PAIRS
from streamer.core.parallel import DRAW_STREAM, apply_work, draw_work, new_work
from streamer.core.sgns import pair_scratch, train_pair
from streamer.errors import ConfigError

from tests.core.synthetic import cluster_of, clustered_events


def cluster_precision(trainer: Trainer, k: int = 5) -> float:
    ids, _ = trainer.vectors()
    return float(np.mean([
        np.mean([cluster_of(other) == cluster_of(item) for other, _ in trainer.most_similar(item, k=k)])
        for item in ids
    ]))


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ConfigError):
        Trainer(workers=workers)


def test_two_workers_learn_the_planted_clusters_as_well_as_one():
    events = clustered_events(clusters=5, items_per_cluster=8, sessions=600)
    one, two = Trainer(vector_size=16, seed=2, workers=1), Trainer(vector_size=16, seed=2, workers=2, batch_size=500)
    one.learn(events)
    two.learn(events)
    assert cluster_precision(two) > 0.9  # chance is 7/39 ~ 0.18
    assert cluster_precision(two) > cluster_precision(one) - 0.05


def test_two_workers_keep_the_same_bookkeeping_as_one():
    events = clustered_events(clusters=6, sessions=300, seed=5)
    events.insert(100, (events[99][0], "c0_i0", events[99][2] - 10_000.0))  # late for its user: rejected by both
    one, two = Trainer(vector_size=16, seed=3), Trainer(vector_size=16, seed=3, workers=2, batch_size=300)
    reports = [one.learn(events), two.learn(events)]
    assert reports[0].accepted == reports[1].accepted == len(events) - 1
    assert reports[0].rejected == reports[1].rejected and reports[0].rejected[0][1] == "late"
    assert (one.event_count, one.item_count, one.open_session_count) == (two.event_count, two.item_count,
                                                                         two.open_session_count)
    assert sorted(one.vectors()[0]) == sorted(two.vectors()[0])
    assert np.array_equal(one._items.arrays.counts, two._items.arrays.counts)
    vectors = two.vectors()[1]
    assert np.all(np.isfinite(vectors)) and np.abs(vectors).max() > 0.0


def test_pipelined_blocks_keep_bookkeeping_and_learn_the_clusters():
    """Small blocks: each batch is many blocks, each recorded while the previous one is trained. The
    bookkeeping does not depend on where the blocks end; the vectors still find the planted clusters."""
    events = clustered_events(clusters=5, items_per_cluster=8, sessions=600)
    whole, pipelined = Trainer(vector_size=16, seed=2, workers=2), Trainer(vector_size=16, seed=2, workers=2)
    pipelined._work = (new_work(pipelined._hyper, block_pairs=64), new_work(pipelined._hyper, block_pairs=64))
    whole.learn(events)
    pipelined.learn(events)
    assert whole._replay.counters[COUNTER_PAIRS] > 20 * 64  # many blocks
    assert (whole.event_count, whole.item_count) == (pipelined.event_count, pipelined.item_count)
    assert np.array_equal(whole._items.arrays.counts, pipelined._items.arrays.counts)
    assert np.array_equal(whole._replay.pairs, pipelined._replay.pairs)  # the same pairs recorded, in the same order
    assert np.array_equal(whole._replay.counters, pipelined._replay.counters)
    assert cluster_precision(pipelined) > 0.9


def test_two_workers_save_load_and_continue(tmp_path):
    events = clustered_events(clusters=4, sessions=200)
    trainer = Trainer(vector_size=16, seed=4, workers=2, replay_passes=1)
    trainer.learn(events[:600])
    path = tmp_path / "two.ckpt"
    trainer.save(path)
    resumed = Trainer.load(path)
    assert resumed.settings.workers == 2
    assert resumed.vectors()[0] == trainer.vectors()[0]
    assert np.array_equal(resumed.vectors()[1], trainer.vectors()[1])
    resumed.learn(events[600:])
    assert resumed.event_count == len(events)
    assert np.all(np.isfinite(resumed.vectors()[1]))
    assert resumed.replay(1000) > 0  # spare-time replay runs through the parallel path too


def _recorded_items(pairs, negatives, vector_size=8, rows=12, seed=0):
    """Item arrays of a small trained-looking model and a WorkArrays holding ``pairs`` and ``negatives``."""
    trainer = Trainer(vector_size=vector_size, negative=negatives.shape[1], workers=1)  # deterministic set-up
    trainer.learn([("u", f"i{row}", float(row)) for row in range(rows)])
    arrays = trainer._items.arrays
    random = np.random.default_rng(seed)
    arrays.vectors_in[:rows] = random.normal(size=(rows, vector_size)).astype(np.float32)
    arrays.vectors_out[:rows] = random.normal(size=(rows, vector_size)).astype(np.float32)
    arrays.accum_in[:rows] = arrays.accum_out[:rows] = 1.0
    work = new_work(trainer._hyper, block_pairs=len(pairs))
    work.pairs[: len(pairs)] = pairs
    work.negatives[: len(negatives)] = negatives
    work.counters[WORK_PAIRS], work.counters[WORK_BLOCKS] = len(pairs), len(negatives)
    return trainer, arrays, work


def test_recorded_pairs_are_trained_by_the_one_sgns_step():
    pairs = np.array([[0, 1, 0], [2, 3, 0], [1, 4, 1]])
    negatives = np.array([[5, 6], [7, 0]])
    trainer, arrays, work = _recorded_items(pairs, negatives)
    expected = {name: getattr(arrays, name).copy() for name in ("vectors_in", "vectors_out", "accum_in", "accum_out")}
    reference = arrays._replace(**expected)
    gradient = pair_scratch(arrays.vectors_in.shape[1], negatives.shape[1])
    for first, second, block in pairs:
        train_pair(reference, first, second, negatives[block], trainer._hyper.learning_rate, gradient)
        train_pair(reference, second, first, negatives[block], trainer._hyper.learning_rate, gradient)
    assert apply_work(arrays, work, trainer._hyper.learning_rate, 1) == len(pairs)
    for name, value in expected.items():
        assert np.array_equal(getattr(arrays, name), value), name


def test_parallel_chunks_on_disjoint_rows_equal_one_chunk():
    # two halves touching disjoint rows: no race, so two parallel chunks give exactly the serial result
    pairs = np.array([[0, 1, 0], [1, 2, 0], [6, 7, 1], [7, 8, 1]])
    negatives = np.array([[3, 4], [9, 10]])
    serial, serial_arrays, serial_work = _recorded_items(pairs, negatives)
    parallel, parallel_arrays, parallel_work = _recorded_items(pairs, negatives)
    before = parallel_arrays.vectors_in.copy()
    apply_work(serial_arrays, serial_work, serial._hyper.learning_rate, 1)
    apply_work(parallel_arrays, parallel_work, parallel._hyper.learning_rate, 2)
    assert np.array_equal(serial_arrays.vectors_in, parallel_arrays.vectors_in)
    assert np.array_equal(serial_arrays.vectors_out, parallel_arrays.vectors_out)
    assert not np.array_equal(parallel_arrays.vectors_in, before)


def test_parallel_negatives_are_drawn_from_their_own_stream():
    # rows 0..11 live with weight; the blocks are drawn from stream DRAW_STREAM, never from stream 0 (the
    # bookkeeping's), so the bookkeeping draws the same numbers whatever the blocks need
    trainer, arrays, work = _recorded_items(np.zeros((4, 3), np.int64), np.full((6, 3), -1, np.int64))
    assert trainer._rng.shape == (1,)
    rng = np.array([11, 22, 33], np.uint64)
    draws = []
    for _ in range(2):
        work.negatives[:] = -1
        state = rng.copy()
        assert draw_work(arrays, work, state) == 6
        draws.append((work.negatives[:6].copy(), state))
    assert np.array_equal(draws[0][0], draws[1][0]) and np.array_equal(draws[0][1], draws[1][1])  # same seed, same draws
    negatives, state = draws[0]
    assert np.all((negatives >= 0) & (negatives < 12))
    assert state[0] == rng[0] and state[DRAW_STREAM] != rng[DRAW_STREAM] and state[2] == rng[2]
    assert Trainer(workers=2)._rng.shape == (3,)  # the checkpoint layout keeps one stream per worker plus one