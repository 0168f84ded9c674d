"""Bounded memory: max_items eviction of the least used items, item_ttl expiry in event time, user slots."""

import pytest

from streamer import Trainer


def test_max_items_evicts_least_used_and_keeps_frequent():
    trainer = Trainer(vector_size=8, max_items=50, seed=1)
    events = []
    ts = 0.0
    for index in range(2000):
        events.append(("u", f"hot{index % 10}", ts))  # 10 frequent items
        events.append(("u", f"rare{index}", ts + 1))  # 2000 one-off items
        ts += 2.0
    trainer.learn(events)
    ids, vectors = trainer.vectors()
    assert len(ids) <= 50 and vectors.shape[0] == len(ids)
    assert {f"hot{index}" for index in range(10)} <= set(ids)
    retired = trainer.take_retired()
    assert len(retired) >= 1900 and all(item.startswith("rare") for item in retired)
    assert len(trainer._items.ids) <= 50  # rows are reused: the table never holds more than max_items rows


def test_item_ttl_expires_items_unseen_in_event_time():
    trainer = Trainer(vector_size=8, item_ttl=1000.0, watermark_quorum=1)  # every event moves the watermark
    trainer.learn([("u", "old", 0.0), ("u", "kept", 10.0)])
    trainer.learn([("u", "kept", 900.0 + step) for step in range(0, 1200, 100)])
    ids, _ = trainer.vectors()
    assert "old" not in ids and "kept" in ids
    assert trainer.take_retired() == {"old"}
    trainer.learn([("v", "old", 3000.0)])  # an expired item that comes back starts again
    assert trainer.vector("old") is not None


@pytest.mark.parametrize("batch_size", [65536, 7])
def test_idle_users_are_recycled(batch_size):
    """One compiled call (sweeps inside it) or many batches trained on the background thread. A batch maps
    its users to slots before it is trained, so slots swept in it are reused from the next batch on."""
    trainer = Trainer(vector_size=8, session_gap=100.0, lateness=0.0, batch_size=batch_size, watermark_quorum=1)
    trainer.learn([(f"user{index}", "a", float(index * 1000)) for index in range(500)])
    assert len(trainer._users.slots) < 10
    assert trainer.open_session_count == 1
    assert len(trainer._users.ids) <= min(500, batch_size + 10)
    trainer.learn([(f"later{index}", "a", float(10**6 + index * 1000)) for index in range(500)])
    assert len(trainer._users.slots) < 10
    assert len(trainer._users.ids) <= min(500, batch_size + 10) + 10  # the freed slots were reused
