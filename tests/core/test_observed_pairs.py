"""Observed co-occurrence in most_similar: the bounded table of session pairs, its measured term, its source."""

from __future__ import annotations

import numpy as np

from streamer import Trainer
from streamer.core.learning import COUNTER_PAIRS, ReplayArrays
from streamer.core.observed_pairs import BUCKETS, MIN_OBSERVED, ObservedPairs
from streamer.core.sessions import UserTable
from streamer.core.sgns import ITEM_LIVE
from streamer.core.vocab import ItemTable


class _Engine:
    """The three tables ObservedPairs reads, with ``rows`` live items."""

    def __init__(self, width: int = 4, window: int = 2, rows: int = 16):
        self.items = ItemTable(vector_size=2, capacity=rows, partners=width)
        self.items.arrays.status[:] = ITEM_LIVE
        self.users = UserTable(window)
        self.replay = ReplayArrays(np.full((0, 2), -1, np.int32), np.zeros(8, np.int64))
        self.table = ObservedPairs(lambda: (self.items, self.users, self.replay), 1.0, window, 10.0)

    def learn(self, events, late=()):
        slots, rows, times = (np.array(column) for column in zip(*events))
        outcome = np.zeros(len(events), np.int8)
        outcome[list(late)] = 1
        self.table.learn(slots, rows, times.astype(np.float64), outcome)

    def partners(self, row: int) -> dict[int, float]:
        arrays = self.items.arrays
        return {int(other) - 1: float(count) for other, count in zip(arrays.partners[row], arrays.partner_counts[row])
                if other > 0}


def test_pairs_within_the_window_of_one_session_are_counted_on_both_sides():
    engine = _Engine(window=2)
    # user 0: 1, 2, 3, 3 then a gap, 4; user 1: 1, 2 (a late event 5 between them is skipped). As in the engine, an
    # immediate repeat pairs with nothing.
    engine.learn([(0, 1, 0.0), (1, 1, 0.5), (0, 2, 1.0), (1, 5, 1.2), (1, 2, 1.5), (0, 3, 2.0), (0, 3, 2.5),
                  (0, 4, 30.0)], late=[3])
    assert engine.partners(1) == {2: 2.0, 3: 1.0}
    assert engine.partners(2) == {1: 2.0, 3: 1.0}
    assert engine.partners(3) == {1: 1.0, 2: 1.0}
    assert engine.partners(4) == {} and engine.partners(5) == {}


def test_a_full_row_keeps_its_heavy_partner_and_a_newcomer_inherits_the_lowest_count():
    engine = _Engine(width=2, window=1)
    events, time = [], 0.0
    for other in [2, 3, 2, 4, 2, 5, 2, 6]:  # row 1 meets 2 four times, and 3, 4, 5, 6 once each
        events += [(0, 1, time), (0, other, time + 1.0)]
        time += 100.0
    engine.learn(events)
    partners = engine.partners(1)
    assert partners[2] == 4.0 and set(partners) == {2, 6}  # the bottom slot turned over, the heavy hitter stayed
    assert partners[6] == 4.0  # Space-Saving: 6 took the slot of 5 (count 3) and its count


def test_the_term_is_measured_on_the_replay_buffer_and_off_before_enough_observations():
    engine = _Engine(width=4, window=1, rows=100)
    assert engine.table.term(np.array([0]), np.array([1, 3])) is None
    pairs = np.array([(2 * (index % 50) + 1, 2 * (index % 50)) for index in range(6 * MIN_OBSERVED)], np.int32)
    events = [(0, int(row), 100.0 * index + offset) for index, pair in enumerate(pairs[:, ::-1])
              for offset, row in enumerate(pair)]  # 50 fixed pairs (2k, 2k + 1), each session one of them
    engine.learn(events)
    engine.replay = ReplayArrays(pairs, np.zeros(8, np.int64))  # the buffer: the same pairs (later, earlier)
    engine.replay.counters[COUNTER_PAIRS] = len(pairs)
    values = engine.table.values()
    assert values is not None and values.shape == (BUCKETS,) and values[0] == 0.0
    assert np.all(np.diff(values) >= 0) and values[-1] > 1.0  # an observed partner is a far likelier next item
    term = engine.table.term(np.array([0]), np.array([1, 3]))
    assert term[0, 0] > 1.0 and term[0, 1] == 0.0
    assert _Engine(width=0).table.term(np.array([0]), np.array([1])) is None  # 0 partners: off


def test_released_rows_leave_the_table_on_both_sides():
    engine = _Engine(width=4, window=2)
    engine.learn([(0, 1, 0.0), (0, 2, 1.0), (0, 3, 2.0)])
    engine.items.arrays.partners[2], engine.items.arrays.partner_counts[2] = 0, 0.0  # what clear_rows does
    engine.table.forget_rows(np.array([2]))
    assert engine.partners(2) == {} and 2 not in engine.partners(1) and 2 not in engine.partners(3)
    assert engine.partners(1) == {3: 1.0}


def _a_then_b(sessions: int = 400, prefix: str = "u", time: float = 0.0):
    events = []
    for session in range(sessions):  # a -> b always; the rest is noise over 40 items
        user = f"{prefix}{session}"
        events += [(user, "a", time), (user, "b", time + 1.0)]
        events += [(user, f"n{(session * 7 + step) % 40}", time + 2.0 + step) for step in range(3)]
        time += 10_000.0
    return events


def test_most_similar_ranks_the_observed_next_item_and_a_checkpoint_keeps_the_table(tmp_path):
    events = _a_then_b()
    trainer = Trainer(vector_size=8, seed=2)
    trainer.learn(events)
    row_a, row_b = trainer._items.rows["a"], trainer._items.rows["b"]
    assert row_b in trainer._observed.source(trainer._items.arrays, np.array([row_a]))[0]
    assert trainer._observed.term(np.array([row_a]), np.array([row_b]))[0, 0] > 0.0
    assert trainer.most_similar("a", 1)[0][0] == "b"
    off = Trainer(vector_size=8, seed=2, cooccurrence_weight=0.0)
    off.learn(events)
    assert off._observed.term(np.array([row_a]), np.array([row_b])) is None
    path = tmp_path / "checkpoint"
    trainer.save(path)
    loaded = Trainer.load(path)
    assert np.array_equal(loaded._items.arrays.partner_counts, trainer._items.arrays.partner_counts)
    assert loaded.most_similar("a", 5) == trainer.most_similar("a", 5)
    more = _a_then_b(3, "v", time=events[-1][2] + 1.0)
    trainer.learn(more[:3])  # a session open across the checkpoint: its first items before, the rest after
    trainer.save(path)
    loaded = Trainer.load(path)
    trainer.learn(more[3:])
    loaded.learn(more[3:])  # the loaded trainer's rings start from the engine's session rings
    assert np.array_equal(loaded._items.arrays.partner_counts, trainer._items.arrays.partner_counts)
