"""One event with a clock far ahead must not move the event-time watermark: it would close every user's
session, expire items and decay popularity for everyone (issue 16 item 7). The watermark moves to a time
only once ``watermark_quorum`` events in a row have reached it; a user's own session gap is judged on the
user's own clock."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.learning import COUNTER_PAIRS

START, USERS, AHEAD = 1_700_000_000.0, 200, 82_800.0


def _stream(bad_clock: bool) -> list[tuple[str, str, float]]:
    """Every user clicks once, (one event 23 h ahead,) then every user clicks again 5 min later."""
    first = [(f"u{index}", f"a{index % 17}", START + index) for index in range(USERS)]
    second = [(f"u{index}", f"b{index % 13}", START + 300 + index) for index in range(USERS)]
    return first + ([("clock", "x", START + AHEAD)] if bad_clock else []) + second


@pytest.mark.parametrize("records", ["tuples", "dicts"])
def test_one_event_far_ahead_does_not_close_every_session(records):
    knobs = {"vector_size": 8, "seed": 3, "replay_passes": 0, "lateness": 60.0}
    trainers = {}
    for name, quorum, bad_clock in (("control", 16, False), ("robust", 16, True), ("old", 1, True)):
        events = _stream(bad_clock)
        if records == "dicts":  # the per-record path
            events = [{"user": user, "item": item, "ts": ts} for user, item, ts in events]
        trainer = Trainer(watermark_quorum=quorum, **knobs)
        trainer.learn(events)
        trainers[name] = trainer
    control, robust, old = trainers["control"], trainers["robust"], trainers["old"]
    pairs = {name: int(trainer._replay.counters[COUNTER_PAIRS]) for name, trainer in trainers.items()}
    assert pairs["control"] == USERS  # each user's two clicks are one session: one pair each
    assert pairs["robust"] == pairs["control"]  # the clock ahead closed nobody's session
    assert pairs["old"] == 0  # without the quorum it closed every one of them
    assert robust.open_session_count == control.open_session_count + 1 == USERS + 1
    assert robust.watermark < START + 1000 < old.watermark


def test_the_watermark_follows_the_stream_once_the_quorum_agrees():
    trainer = Trainer(vector_size=8, watermark_quorum=4)
    trainer.learn([("u", "a", 10.0), ("v", "b", 5_000.0), ("u", "a", 20.0), ("w", "c", 30.0)])
    assert trainer.watermark == 10.0
    trainer.learn([(f"u{index}", "a", 100.0 + index) for index in range(4)])
    assert trainer.watermark == 100.0  # four events in a row at 100 or later


def test_item_ttl_is_not_triggered_by_one_event_far_ahead():
    trainer = Trainer(vector_size=8, item_ttl=3600.0)
    trainer.learn([(f"u{index % 9}", f"i{index % 30}", START + index) for index in range(300)])
    trainer.learn([("clock", "x", START + AHEAD)] + [(f"u{index % 9}", f"i{index % 30}", START + 300 + index)
                                                     for index in range(30)])
    assert trainer.take_retired() == set()
    assert len(trainer.vectors()[0]) == 31


@pytest.mark.parametrize("split", [1, 7, 201, 250])
def test_batches_and_checkpoints_do_not_change_the_watermark(tmp_path, split):
    events = _stream(bad_clock=True) + [(f"u{index}", "c", START + 2500 + index) for index in range(50)]
    whole = Trainer(vector_size=8, seed=5, session_gap=600.0)
    whole.learn(events)
    parts = Trainer(vector_size=8, seed=5, session_gap=600.0)
    parts.learn(events[:split])
    parts.save(tmp_path / "state.ckpt")
    parts = Trainer.load(tmp_path / "state.ckpt")
    parts.learn([{"user": user, "item": item, "ts": ts} for user, item, ts in events[split:]])  # per-record path
    assert parts.watermark == whole.watermark
    assert parts.open_session_count == whole.open_session_count
    assert np.array_equal(parts.vectors()[1], whole.vectors()[1])
