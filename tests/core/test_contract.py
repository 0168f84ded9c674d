"""Contract tests of the Trainer API (river-style): input not mutated, seeds, round-trips, new items."""

import copy
import pickle

import numpy as np
import pytest

from streamer import Trainer
from streamer.errors import ConfigError

from tests.core.synthetic import clustered_events


def small(**overrides) -> Trainer:
    return Trainer(**{"vector_size": 16, "seed": 7, "replay_buffer": 1000, **overrides})


def test_input_is_not_mutated():
    events = [list(event) for event in clustered_events(sessions=20)]
    dicts = [{"user": u, "item": i, "ts": t} for u, i, t in clustered_events(sessions=20, seed=1)]
    before = (copy.deepcopy(events), copy.deepcopy(dicts))
    trainer = small()
    trainer.learn(events)
    trainer.learn(dicts)
    assert (events, dicts) == before


def test_same_seed_same_vectors_different_seed_different_vectors():
    events = clustered_events(sessions=50)
    first, second, other = small(), small(), small(seed=8)
    for trainer in (first, second, other):
        trainer.learn(events)
    assert first.vectors()[0] == second.vectors()[0]
    assert np.array_equal(first.vectors()[1], second.vectors()[1])
    assert not np.array_equal(first.vectors()[1], other.vectors()[1])


def test_tuples_dicts_and_lists_learn_the_same():
    events = clustered_events(sessions=30)
    as_tuples, as_dicts = small(), small()
    as_tuples.learn(events)
    as_dicts.learn({"user": u, "item": i, "ts": t} for u, i, t in events)
    assert np.array_equal(as_tuples.vectors()[1], as_dicts.vectors()[1])


def test_pickle_round_trip_continues_identically():
    events = clustered_events(sessions=60)
    trainer, reference = small(), small()
    trainer.learn(events[:200])
    restored = pickle.loads(pickle.dumps(trainer))
    restored.learn(events[200:])
    reference.learn(events)
    assert restored.vectors()[0] == reference.vectors()[0]
    assert np.array_equal(restored.vectors()[1], reference.vectors()[1])
    assert restored.event_count == reference.event_count == len(events)


def test_new_items_accepted_mid_stream():
    trainer = small()
    trainer.learn(clustered_events(sessions=30))
    before = trainer.item_count
    report = trainer.learn([("late-user", "brand-new", 1e7), ("late-user", "c0_i0", 1e7 + 1)])
    assert report.accepted == 2
    assert trainer.item_count == before + 1
    assert trainer.vector("brand-new") is not None
    assert "brand-new" in trainer.take_changed()


def test_bad_records_are_returned_not_raised():
    trainer = small()
    bad = [("u", "", 1.0), {"user": "u", "ts": 1}, ("u", "i", float("nan")), ("u", "i", -5), "junk", None]
    report = trainer.learn([("u", "a", 1.0), *bad, ("u", "b", 2.0)])
    assert report.accepted == 2
    assert [reason for _, reason in report.rejected] == [
        "empty_id:item", "missing_field:item", "bad_ts", "bad_ts", "wrong_type:record", "wrong_type:record",
    ]
    assert [record for record, _ in report.rejected] == bad
    assert trainer.event_count == 2


def test_late_events_beyond_lateness_are_rejected():
    trainer = small(lateness=10.0)
    report = trainer.learn([("u", "a", 100.0), ("u", "b", 95.0), ("u", "c", 50.0)])
    assert report.accepted == 2
    assert report.rejected == [(("u", "c", 50.0), "late")]


def test_vectors_most_similar_and_user_vector_shapes():
    trainer = small()
    trainer.learn(clustered_events(sessions=40))
    ids, vectors = trainer.vectors()
    assert vectors.dtype == np.float32 and vectors.shape == (len(ids), 16)
    similar = trainer.most_similar(ids[0], k=5)
    assert len(similar) == 5 and ids[0] not in [item for item, _ in similar]
    assert [score for _, score in similar] == sorted((score for _, score in similar), reverse=True)
    assert trainer.user_vector("user39").shape == (16,)  # the last session is still open
    assert trainer.user_vector("nobody") is None
    assert trainer.most_similar("unknown") == []


def test_take_changed_reports_then_clears():
    trainer = small()
    trainer.learn([("u", "a", 0.0), ("u", "b", 1.0)])
    assert trainer.take_changed() == {"a", "b"}
    assert trainer.take_changed() == set()


def test_retired_items_never_sampled_nor_returned():
    trainer = small(negative=20)
    events = clustered_events(sessions=80)
    trainer.learn(events[:240])
    report = trainer.catalog([{"op": "retire", "item": "c0_i0"}, {"op": "retire", "item": "c1_i1"}])
    assert report.accepted == 2
    assert trainer.take_retired() == {"c0_i0", "c1_i1"}
    trainer.take_changed()
    # the stream keeps mentioning them: rejected, never created again, never drawn as negatives
    report = trainer.learn(events[240:])
    assert {reason for _, reason in report.rejected} == {"retired_item"}
    ids, _ = trainer.vectors()
    assert "c0_i0" not in ids and "c1_i1" not in ids
    assert trainer.vector("c0_i0") is None
    for item in ids:
        assert {"c0_i0", "c1_i1"}.isdisjoint(name for name, _ in trainer.most_similar(item, k=len(ids)))
    assert {"c0_i0", "c1_i1"}.isdisjoint(trainer.take_changed())  # output rows of retired items untouched


def test_invalid_settings_raise_config_error():
    with pytest.raises(ConfigError):
        Trainer(vector_size=0)
    with pytest.raises(ConfigError):
        Trainer(learning_rate=float("nan"))
    with pytest.raises(TypeError):
        Trainer(no_such_knob=1)
