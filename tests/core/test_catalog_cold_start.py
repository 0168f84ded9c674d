"""Catalog-aware cold start: per-attribute leaders (no scan of the attribute), the blended first event, the
attribute term of most_similar with its lift measured on the stream."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.vocab import LEADERS, ItemTable


class Unscannable(set):
    """An attribute's member set that fails if anything iterates it (the upsert must not scan the attribute)."""

    def __iter__(self):
        raise AssertionError("the whole attribute was scanned")


def _table_with_one_big_attribute(members: int) -> ItemTable:
    items = ItemTable(vector_size=4)
    for index in range(members):
        row = int(items.allocate([f"i{index}"])[0])
        items.arrays.status[row] = 2  # live
        items.arrays.counts[row] = (index * 7919) % 1000 + 1
        items.set_attributes(f"i{index}", {"category": "big"})
    return items


@pytest.mark.parametrize("members", [100, 5_000])
def test_upsert_neighbours_read_only_the_attribute_leaders_whatever_its_size(members):
    items = _table_with_one_big_attribute(members)
    counts = items.arrays.counts[:members]
    pair = ("category", "big")
    assert len(items.leaders[pair].rows) == min(LEADERS, members)  # the structure does not grow with the attribute
    items.attribute_index[pair] = Unscannable(items.attribute_index[pair])
    found = items.attribute_neighbours({"category": "big"}, 5)
    expected = sorted(range(members), key=lambda row: (-counts[row], row))[:5]
    assert found.tolist() == expected


def test_leaders_follow_counts_as_they_grow_and_heal_after_a_release():
    items = _table_with_one_big_attribute(200)
    pair = ("category", "big")
    items.arrays.counts[150] = 10_000  # a member taking off after its last offer
    items.offer(np.array([150]))
    assert items.attribute_neighbours({"category": "big"}, 1).tolist() == [150]
    items.release(np.array([150]))
    assert items.leaders[pair].stale
    counts = items.arrays.counts
    expected = sorted((row for row in range(200) if row != 150), key=lambda row: (-counts[row], row))[:LEADERS]
    assert sorted(items.leaders_of(pair)) == sorted(expected)


def _announce(trainer, item, attrs):
    trainer.catalog([{"op": "upsert", "item": item, "attrs": attrs}])


def _still_trainer(**knobs) -> Trainer:
    # learning rate ~0: the first event's start is not moved by training, so it can be checked exactly
    return Trainer(vector_size=8, seed=3, learning_rate=1e-12, init_noise=0.0, replay_passes=0, **knobs)


def _warm(trainer) -> None:
    for item in ("a", "b", "c"):
        _announce(trainer, item, {"genre": "x"})
    trainer.learn([("u", "a", 0.0), ("u", "b", 1.0), ("v", "a", 2.0), ("v", "c", 3.0), ("w", "a", 4.0)])


@pytest.mark.parametrize("weight", [0.0, 1.0, 3.0])
def test_first_event_of_an_announced_item_blends_its_prior_with_the_session_context(weight):
    trainer = _still_trainer(prior_weight=weight, cold_start_neighbours=2)
    _warm(trainer)
    _announce(trainer, "n", {"genre": "x"})
    prior = trainer.vector("n")
    np.testing.assert_allclose(prior, (trainer.vector("a") + trainer.vector("b")) / 2, rtol=1e-5)  # a 3, b 1, c 1
    context = trainer.vector("c")
    trainer.learn([("z", "c", 10.0), ("z", "n", 11.0)])
    np.testing.assert_allclose(trainer.vector("n"), (context + weight * prior) / (1 + weight), rtol=1e-4, atol=1e-6)


def test_first_event_without_context_keeps_the_prior_only_when_it_weighs_something():
    kept, restarted = _still_trainer(prior_weight=1.0), _still_trainer(prior_weight=0.0)
    for trainer in (kept, restarted):
        _warm(trainer)
        _announce(trainer, "n", {"genre": "x"})
    prior, restarted_prior = kept.vector("n"), restarted.vector("n")
    np.testing.assert_allclose(prior, restarted_prior, rtol=1e-5)
    for trainer in (kept, restarted):
        trainer.learn([("alone", "n", 10.0)])
    np.testing.assert_allclose(kept.vector("n"), prior, rtol=1e-5)
    assert not np.allclose(restarted.vector("n"), prior, rtol=0.1)  # a new random start, as a new item alone gets


def _category_sessions(same_category: bool, sessions: int = 300, size: int = 10) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(5)
    events, ts = [], 0.0
    for session in range(sessions):
        first = int(rng.choice(4, p=[0.1, 0.3, 0.3, 0.3]))  # category 0 the least popular
        for step in range(3):
            category = first if same_category else int(rng.integers(0, 4))
            ts += 1.0
            events.append((f"s{session}", f"c{category}_i{int(rng.integers(0, size))}", ts))
        ts += 4000.0
    return events


def _catalogued(weight: float = 1.0, size: int = 10, **knobs) -> Trainer:
    trainer = Trainer(vector_size=16, seed=1, attribute_weight=weight, **knobs)
    trainer.catalog([{"op": "upsert", "item": f"c{category}_i{index}", "attrs": {"category": str(category)}}
                     for category in range(4) for index in range(size)])
    return trainer


def test_attribute_lift_is_measured_on_the_stream():
    follows, ignores = _catalogued(), _catalogued()
    follows.learn(_category_sessions(same_category=True))
    ignores.learn(_category_sessions(same_category=False))
    query = follows._items.rows["c0_i0"]  # category 0: about 10% of the events
    # the next item shares the category always (smoothed: ~0.999), against ~10% for an item drawn by popularity
    chance = 0.1
    expected = np.log(0.999 / 0.001) - np.log(chance / (1 - chance))
    assert follows._affinity.log_lift(query, follows._affinity.measure()) == pytest.approx(expected, abs=0.6)
    assert ignores._affinity.log_lift(query, ignores._affinity.measure()) < 0.3


def test_most_similar_promotes_the_frequent_items_of_the_query_category_by_the_measured_lift():
    trainer, plain = _catalogued(1.0), _catalogued(0.0)
    events = _category_sessions(same_category=True)
    events.append(("late", "c0_new", events[-1][2] + 5000.0))  # one event alone: no pair, no evidence but its category
    for model in (trainer, plain):
        _announce(model, "c0_new", {"category": "0"})
        model.learn(events)
    same = sum(item.startswith("c0_") for item, _ in trainer.most_similar("c0_new", 10))
    before = sum(item.startswith("c0_") for item, _ in plain.most_similar("c0_new", 10))
    assert same >= 5 and before <= 2  # the query's own vector is a random start: only its category speaks for it
    exact = trainer.most_similar("c0_new", 10, exact=True)
    assert [item for item, _ in exact][:5] == [item for item, _ in trainer.most_similar("c0_new", 10)][:5]


def _leaders(trainer: Trainer) -> dict:
    items = trainer._items
    return {pair: sorted(items.leaders_of(pair)) for pair in items.leaders}


def test_prior_weights_and_leaders_survive_a_checkpoint_and_base_plus_deltas(tmp_path):
    from streamer.core import delta
    from streamer.core.persistence import restore_state, trainer_state

    live = _catalogued(prior_weight=1.0, size=3 * LEADERS)  # more members than leaders: who leads depends on counts
    live.learn(_category_sessions(same_category=True, sessions=60, size=3 * LEADERS))
    meta, arrays = trainer_state(live, snapshot=True)
    restored = Trainer.__new__(Trainer)
    restore_state(restored, meta, {name: value.copy() for name, value in arrays.items()})
    delta.start_tracking(live)
    before = _leaders(live)
    live.learn(_category_sessions(same_category=False, sessions=400, size=3 * LEADERS))
    assert _leaders(live) != before  # counts moved: the leaders changed
    live.catalog([{"op": "upsert", "item": "announced", "attrs": {"category": "2"}}])
    assert live._items.arrays.prior[live._items.rows["announced"]] == 1.0
    delta.apply(restored, *delta.collect(live))
    live.save(tmp_path / "full.ckpt")
    loaded = Trainer.load(tmp_path / "full.ckpt")
    for other in (restored, loaded):
        assert _leaders(other) == _leaders(live)
        row = live._items.rows["announced"]
        assert other._items.arrays.prior[row] == live._items.arrays.prior[row]
        assert other._affinity.measure() == live._affinity.measure()
        assert other.most_similar("c1_i1", 5) == live.most_similar("c1_i1", 5)


def test_announcing_items_before_their_events_changes_nothing_learned_by_default():
    events = _category_sessions(same_category=True, sessions=80)
    plain, announced = Trainer(vector_size=16, seed=1), Trainer(vector_size=16, seed=1)
    first_seen = list(dict.fromkeys(item for _, item, _ in events))  # rows in the same order as without a catalog
    announced.catalog([{"op": "upsert", "item": item, "attrs": {"category": item[1]}} for item in first_seen])
    for trainer in (plain, announced):
        trainer.learn(events[:120])
    announced.catalog([{"op": "upsert", "item": "c1_late", "attrs": {"category": "1"}}])  # after counts exist
    tail = events[120:] + [("s-late", "c1_late", events[-1][2] + 1.0), ("s-late", "c2_i1", events[-1][2] + 2.0)]
    for trainer in (plain, announced):
        trainer.learn(tail)
    ids, vectors = plain.vectors()
    again, others = announced.vectors_for(ids)
    assert again == ids and np.array_equal(vectors, others)  # the prior's own random stream, context-only start
