"""Checkpoints: A then B equals A+B (any split, with or without save/load), atomic, versioned, validated."""

import zipfile

import numpy as np
import orjson
import pytest

from streamer import Trainer
from streamer.core.learning import COUNTER_PAIRS
from streamer.errors import CheckpointError

from tests.core.synthetic import clustered_events

SETTINGS = {"vector_size": 16, "seed": 3, "replay_passes": 2, "replay_buffer": 500, "max_items": 30,
            "item_ttl": 50_000.0}
# no bound and no expiry: batches train on the background thread and user sweeps run in compiled code
UNBOUNDED = {"vector_size": 16, "seed": 3, "replay_passes": 2, "replay_buffer": 500, "session_gap": 300.0}


def events():
    stream = clustered_events(clusters=6, sessions=120)
    return stream + [("tail", f"fresh{index}", stream[-1][2] + index) for index in range(10)]


def same_state(left: Trainer, right: Trainer) -> None:
    left_ids, left_vectors = left.vectors()
    right_ids, right_vectors = right.vectors()
    assert left_ids == right_ids
    assert np.array_equal(left_vectors, right_vectors)
    assert left.event_count == right.event_count
    assert left.open_session_count == right.open_session_count


@pytest.mark.parametrize("split", [1, 97, 333, 500])
def test_learning_a_then_b_equals_a_plus_b(split):
    stream = events()
    whole, parts = Trainer(**SETTINGS), Trainer(**SETTINGS)
    whole.learn(stream)
    parts.learn(stream[:split])
    parts.learn(stream[split:])
    same_state(whole, parts)


@pytest.mark.parametrize("settings", [SETTINGS, UNBOUNDED], ids=["bounded", "unbounded"])
def test_batch_size_does_not_change_what_is_learned(settings):
    stream = events()
    whole, small_batches = Trainer(**settings), Trainer(**settings, batch_size=7)
    whole.learn(stream)
    small_batches.learn(stream)
    same_state(whole, small_batches)


@pytest.mark.parametrize("split", [1, 97, 333])
def test_unbounded_a_then_b_equals_a_plus_b_with_background_batches(split):
    stream = events()
    whole, parts = Trainer(**UNBOUNDED, batch_size=16), Trainer(**UNBOUNDED, batch_size=16)
    whole.learn(stream)
    parts.learn(stream[:split])
    parts.learn(stream[split:])
    same_state(whole, parts)
    assert len(whole._users.slots) == len(parts._users.slots)


def test_user_swept_within_a_batch_starts_a_new_session():
    """u's session is swept before v's event (in the middle of the compiled call); u's next event, close to
    its last one, must open a new session (no pair with ``a``) as it does when the calls are split there."""
    stream = [("u", "a", 0.0), ("w", "c", 1.0), ("w", "a", 2.0), ("v", "c", 10_000.0), ("u", "b", 50.0),
              ("x", "b", 10_001.0), ("x", "c", 10_002.0)]
    knobs = {"session_gap": 100.0, "lateness": 100.0, "replay_passes": 0, "watermark_quorum": 1}  # v's event sweeps
    whole = Trainer(vector_size=8, seed=1, **knobs)
    whole.learn(stream)
    split = Trainer(vector_size=8, seed=1, **knobs)
    for event in stream:
        split.learn([event])
    same_state(whole, split)
    assert whole.event_count == len(stream)
    assert whole._replay.counters[COUNTER_PAIRS] == 2  # w: c-a, x: b-c; no u: a-b across the sweep


@pytest.mark.parametrize("split", [150, 401])
def test_save_load_between_a_and_b_changes_nothing(tmp_path, split):
    stream = events()
    whole, first = Trainer(**SETTINGS), Trainer(**SETTINGS)
    whole.learn(stream)
    first.learn(stream[:split])
    path = tmp_path / "model.ckpt"
    first.save(path)
    resumed = Trainer.load(path)
    assert resumed.settings == first.settings
    resumed.learn(stream[split:])
    same_state(whole, resumed)
    assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed, nothing left behind


def test_catalog_state_survives_save_load(tmp_path):
    trainer = Trainer(vector_size=8)
    trainer.learn([("u", "a", 1.0), ("u", "b", 2.0)])
    trainer.catalog([{"op": "upsert", "item": "a", "attrs": {"brand": "x"}}, {"op": "retire", "item": "b"}])
    trainer.save(tmp_path / "c.ckpt")
    resumed = Trainer.load(tmp_path / "c.ckpt")
    assert resumed.learn([("u", "b", 3.0)]).rejected[0][1] == "retired_item"
    resumed.catalog([{"op": "upsert", "item": "new", "attrs": {"brand": "x"}}])
    assert np.allclose(resumed.vector("new"), resumed.vector("a"), atol=0.01)


def test_garbage_truncated_and_foreign_files_raise_checkpoint_error(tmp_path):
    trainer = Trainer(vector_size=8)
    trainer.learn(clustered_events(sessions=5))
    good = tmp_path / "good.ckpt"
    trainer.save(good)
    data = good.read_bytes()
    cases = {
        "missing.ckpt": None,
        "garbage.ckpt": b"hello world",
        "truncated.ckpt": data[: len(data) // 2],
        "flipped.ckpt": data[:-200] + bytes(byte ^ 0xFF for byte in data[-200:-150]) + data[-150:],
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError):
            Trainer.load(tmp_path / name)
    foreign = tmp_path / "foreign.ckpt"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("meta.json", orjson.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(CheckpointError, match="not a streamer checkpoint"):
        Trainer.load(foreign)
    future = tmp_path / "future.ckpt"
    with zipfile.ZipFile(future, "w") as archive:
        archive.writestr("meta.json", orjson.dumps({"format": "streamer-checkpoint", "version": 99}))
    with pytest.raises(CheckpointError, match="version"):
        Trainer.load(future)


def test_corrupt_vector_bytes_are_detected(tmp_path):
    trainer = Trainer(vector_size=8)
    trainer.learn(clustered_events(sessions=5))
    path = tmp_path / "model.ckpt"
    trainer.save(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("items.vectors_in.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        Trainer.load(path)


def _rewrite_without_replay_debt(source, target) -> None:
    """A copy of checkpoint ``source`` as written before the replay debt was saved (no ``replay_debt`` key)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == "meta.json":
                meta = orjson.loads(data)
                del meta["replay_debt"]
                data = orjson.dumps(meta)
            new.writestr(name, data)


def test_replay_debt_survives_save_load_and_old_checkpoints_load_with_none_owed(tmp_path):
    trainer = Trainer(**{**SETTINGS, "replay_passes": 3})  # two of the three passes interleaved: one owed
    trainer.learn(events(), replay=False)
    trainer.replay(7)
    owed = trainer.replay_debt
    assert owed > 0
    trainer.save(tmp_path / "model.ckpt")
    _rewrite_without_replay_debt(tmp_path / "model.ckpt", tmp_path / "old.ckpt")
    old = Trainer.load(tmp_path / "old.ckpt")
    assert old.replay_debt == 0
    same_state(trainer, old)
    restored = Trainer.load(tmp_path / "model.ckpt")
    assert restored.replay_debt == owed
    assert restored.replay(5) == trainer.replay(5)  # the same draws from the same state
    assert restored.replay_debt == trainer.replay_debt == owed - 5
    same_state(trainer, restored)
