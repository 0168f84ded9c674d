"""One poll batch: decode, validate, learn in order; rejects become dead letters with their reason."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from streamer import Trainer
from streamer.ingest import Ingestor
from streamer.io.process_source import RecordBatch

NOW = 1_700_000_000.0


class FakeDeadLetters:
    def __init__(self):
        self.letters = []

    def add(self, message, reason, index=None, failures=None, elements=None):
        self.letters.append((message.offset, reason, index) if failures is None else
                            (message.offset, reason, failures, elements))


class FakeSink:
    def __init__(self):
        self.items, self.retired, self.users, self.produced_at = set(), set(), set(), []

    def add_items(self, items, produced_at, urgent=False):
        self.items.update(items)
        self.produced_at.append(produced_at)

    def add_retired(self, items):
        self.retired.update(items)

    def add_users(self, users):
        self.users.update(users)


def _message(offset: int, value, timestamp_ms: int = 1_000_000) -> SimpleNamespace:
    data = value if isinstance(value, (bytes, type(None))) else orjson.dumps(value)
    return SimpleNamespace(topic="events", partition=0, offset=offset, key=b"k", value=data, timestamp=timestamp_ms)


def _ingestor(max_message_bytes: int = 200):
    engine = Trainer(vector_size=8, seed=2, subsample=0.0)
    dead, sink = FakeDeadLetters(), FakeSink()
    ingestor = Ingestor(engine, dead, sink, max_message_bytes, max_future_seconds=60.0, clock=lambda: NOW)
    return ingestor, dead, sink


@pytest.mark.parametrize("columnar", [False, True])
def test_valid_events_are_learned_in_order_and_invalid_ones_dead_lettered(columnar):
    ingestor, dead, sink = _ingestor()
    messages = [
        _message(0, {"user": "u1", "item": "a", "ts": NOW - 10}),
        _message(1, b"{broken"),
        _message(2, [{"user": "u1", "item": "b", "ts": NOW - 9}, {"user": "u1", "ts": NOW}, {"user": "u2", "item": "c",
                                                                                          "ts": NOW - 8}]),
        _message(3, {"user": "u2", "item": "a", "ts": NOW + 3600}),
        _message(4, {"user": "u2", "item": "a", "ts": NOW - 7, "pad": "x" * 300}),
        _message(5, None),
        _message(6, b"[]", timestamp_ms=500_000),
    ]
    if columnar:  # what the fetch process delivers: columns, a record built only for a dead letter
        messages = RecordBatch("events", 0, *([getattr(message, name) for message in messages]
                                              for name in ("offset", "key", "value", "timestamp")))
    result = ingestor.process(messages)
    assert result.events == 3 and result.dead_letters == 6
    assert dead.letters == [(1, "not_json", None), (2, "missing_field:item", [(1, "missing_field:item")], 3),
                            (3, "future_ts", None),
                            (4, "oversize", None), (5, "not_json", None), (6, "empty_array", None)]
    assert sink.items == {"a", "b", "c"} and sink.users == {"u1", "u2"}
    assert sink.produced_at == [500.0]  # the oldest produce time of the batch, for freshness


def test_batches_do_not_change_what_is_learned():
    events = [{"user": f"u{i % 3}", "item": f"i{i % 5}", "ts": NOW - 100 + i} for i in range(40)]
    whole, _, _ = _ingestor()
    whole.process([_message(index, event) for index, event in enumerate(events)])
    split, dead, _ = _ingestor(max_message_bytes=10_000)
    split.process([_message(index, event) for index, event in enumerate(events[:13])])
    split.process([_message(13, events[13:20])])  # the middle as one JSON array message
    split.process([_message(index + 20, event) for index, event in enumerate(events[20:])])
    assert dead.letters == [] and split.engine.event_count == whole.engine.event_count == 40
    ids_whole, vectors_whole = whole.engine.vectors()
    ids_split, vectors_split = split.engine.vectors()
    assert ids_whole == ids_split and (vectors_whole == vectors_split).all()


def test_catalog_updates_create_and_retire_items():
    ingestor, dead, sink = _ingestor()
    ingestor.process([_message(0, {"user": "u", "item": "a", "ts": NOW - 5})])
    result = ingestor.process([
        _message(1, {"op": "upsert", "item": "new", "attrs": {"brand": "x"}}),
        _message(2, {"op": "retire", "item": "a"}),
        _message(3, {"op": "explode", "item": "a"}),
    ], catalog=True)
    assert result.catalog_updates == 2 and dead.letters == [(3, "bad_op", None)]
    assert "new" in sink.items and sink.retired == {"a"}
    assert ingestor.engine.vector("new") is not None and ingestor.engine.vector("a") is None


def test_engine_rejections_are_dead_lettered_too():
    ingestor, dead, _ = _ingestor()
    ingestor.process([_message(0, {"op": "retire", "item": "gone"})], catalog=True)
    ingestor.process([_message(1, {"user": "u", "item": "gone", "ts": NOW - 1}),
                      _message(2, {"user": "u", "item": "ok", "ts": NOW})])
    assert dead.letters == [(1, "retired_item", None)]
    assert ingestor.engine.event_count == 1


def test_the_loop_chooses_per_batch_whether_replay_runs_inline_or_is_owed():
    engine = Trainer(vector_size=8, seed=2, replay_passes=3, interleaved_passes=1)
    ingestor = Ingestor(engine, FakeDeadLetters(), FakeSink(), 200, max_future_seconds=60.0, clock=lambda: NOW)
    batch = [_message(index, {"user": "u", "item": f"i{index % 4}", "ts": NOW - 100 + index}) for index in range(8)]
    ingestor.process(batch[:4], replay=False)  # under load: deferred, two of the three passes owed
    owed = engine.replay_debt
    assert owed > 0
    ingestor.process(batch[4:], replay=True)  # the loop keeps up: this batch replays inline, owes nothing more
    assert engine.replay_debt == owed
    ingestor.process([_message(8, {"user": "u", "item": "i9", "ts": NOW - 50})], replay=False)
    assert engine.replay_debt > owed


def test_a_message_is_dead_lettered_once_with_every_failing_element_validation_or_engine():
    ingestor, dead, _ = _ingestor(max_message_bytes=100_000)
    ingestor.process([_message(0, {"op": "retire", "item": "gone"})], catalog=True)
    elements = [1] * 500 + [{"user": "u", "item": "gone", "ts": NOW - 5}, {"user": "u", "item": "ok", "ts": NOW - 4},
                            {"user": "u", "ts": NOW}]
    result = ingestor.process([_message(1, elements), _message(2, {"user": "u", "item": "b", "ts": NOW - 3})])
    assert result.events == 2 and result.dead_letters == 1
    [(offset, reason, failures, count)] = dead.letters
    assert offset == 1 and reason == "wrong_type:record" and count == 503
    assert failures == [(index, "wrong_type:record") for index in range(500)] + [
        (500, "retired_item"), (502, "missing_field:item")]


def test_take_waiting_publishes_what_a_threshold_held_back_and_then_nothing():
    from tests.core.synthetic import clustered_events

    engine = Trainer(vector_size=16, seed=4, replay_passes=0)
    engine.learn(clustered_events(clusters=6, items_per_cluster=30, sessions=300))
    ingestor = Ingestor(engine, FakeDeadLetters(), FakeSink(), 200, max_future_seconds=60.0, clock=lambda: NOW,
                        publish_rule=(0.05, 30.0))
    assert not ingestor.holding and ingestor.take_waiting() == set()
    assert len(ingestor.take_changed()) == engine.item_count  # never published: all of them
    engine.learn([("late-user", "c1_i3", 1e7), ("late-user", "c1_i4", 1e7 + 1)])  # the negatives barely move
    every = Trainer(vector_size=16, seed=4, replay_passes=0)
    every.learn(clustered_events(clusters=6, items_per_cluster=30, sessions=300))
    every.take_changed()
    every.learn([("late-user", "c1_i3", 1e7), ("late-user", "c1_i4", 1e7 + 1)])
    touched = every.take_changed()  # what every-change publishing writes
    moved = ingestor.take_changed()
    assert moved < touched and ingestor.holding
    assert ingestor.take_waiting() == touched - moved  # the held-back rows, at once (no max_age wait)
    assert not ingestor.holding and ingestor.take_waiting() == set()
    assert ingestor.take_changed() == set()  # nothing left waiting
