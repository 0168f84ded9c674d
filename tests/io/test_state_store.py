"""The checkpoint directory as base + delta segments: cost of what changed, background compaction, kills,
corrupt or missing files (fallback to the last consistent state with its offsets), format 1 directories."""

from __future__ import annotations

import logging

import numpy as np
import orjson
import pytest

from streamer import Trainer
from streamer.errors import CheckpointError
from streamer.io.checkpoint import MANIFEST, CheckpointStore, Manifest
from tests.core.test_delta import assert_identical

EVENTS = [(f"u{index % 7}", f"i{index % 40}", float(index)) for index in range(400)]


def _trainer() -> Trainer:
    return Trainer(vector_size=8, seed=1, replay_passes=0)


def _save_in_steps(store: CheckpointStore, engine: Trainer, steps: int, manifest: Manifest | None = None):
    manifest = manifest or Manifest()
    for step in range(steps):
        engine.learn(EVENTS[step * 50:(step + 1) * 50])
        manifest = store.save(engine, manifest, {("events", 0): (step + 1) * 50}, {"items": [f"i{step}"]})
    return manifest


def test_a_checkpoint_writes_what_changed_and_restores_it(tmp_path):
    store, engine = CheckpointStore(tmp_path, compact_ratio=100.0), _trainer()
    engine.catalog([{"op": "upsert", "item": f"cold{index}"} for index in range(5000)])
    manifest = _save_in_steps(store, engine, 3)
    base, *segments = manifest.chain
    assert base.name.startswith("base-") and [link.name[:6] for link in segments] == ["delta-", "delta-"]
    assert all(link.bytes < 0.2 * base.bytes for link in segments)  # 50 events over 40 of 5,040 items
    restored, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert_identical(engine, restored)
    assert loaded.offsets == {("events", 0): 150} and loaded.pending == {"items": ["i2"]} and not loaded.fell_back
    assert b'"i2"' not in (tmp_path / MANIFEST).read_bytes()  # the unpublished ids are in the files


def test_compaction_runs_in_the_background_and_keeps_the_segments_written_meanwhile(tmp_path):
    store, engine = CheckpointStore(tmp_path, compact_ratio=0.01), _trainer()
    manifest = _save_in_steps(store, engine, 2)  # the second save starts a base from its state
    assert store.wait_for_compaction(30)
    engine.learn(EVENTS[100:150])
    manifest = store.save(engine, manifest, {("events", 0): 150}, {})  # switches to the new base
    # base-2 then this segment, or already base-3 when the base this save started was written before it was linked
    base = manifest.chain[0]
    assert base.name.startswith("base-") and base.sequence in (2, 3) and manifest.chain[-1].sequence == 3
    assert manifest.previous[0].name == f"base-{base.sequence - 1:08d}.ckpt"
    assert manifest.previous[-1].sequence == base.sequence  # the chain the base replaced ends at its state
    assert store.wait_for_compaction(30)  # this save started the next one
    restored, _ = CheckpointStore(tmp_path).load(Trainer.load)
    assert_identical(engine, restored)
    names = {path.name for path in tmp_path.iterdir()}
    assert names >= {link.name for link in manifest.chain + manifest.previous} | {MANIFEST}


def test_a_kill_during_compaction_leaves_the_chain_loadable(tmp_path):
    store, engine = CheckpointStore(tmp_path, compact_ratio=0.01), _trainer()
    manifest = _save_in_steps(store, engine, 2)
    store.close()  # the process dies before the base is renamed: only its temporary file is left
    (tmp_path / ".base-00000002.ckpt.x1.tmp").write_bytes(b"half a base")
    restored, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert_identical(engine, restored)
    assert loaded.sequence == manifest.sequence and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["corrupt", "missing", "truncated"])
def test_an_unusable_segment_falls_back_to_the_state_before_it_with_its_offsets(tmp_path, caplog, damage):
    store, engine = CheckpointStore(tmp_path, compact_ratio=100.0), _trainer()
    manifest = _save_in_steps(store, engine, 2)
    expected = Trainer.load(tmp_path / manifest.chain[0].name)
    expected.learn(EVENTS[50:100])
    _save_in_steps(store, engine, 4, manifest)
    path = tmp_path / "delta-00000003.seg"
    data = bytearray(path.read_bytes())
    if damage == "corrupt":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncated":
        path.write_bytes(bytes(data[:len(data) // 2]))
    else:
        path.unlink()
    with caplog.at_level(logging.ERROR, logger="streamer.checkpoint"):
        restored, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert loaded.fell_back and loaded.offsets == {("events", 0): 100} and loaded.event_count == 100
    assert_identical(expected, restored)
    assert "checkpoint_fallback" in caplog.text
    # it goes on from there: the next save extends the good prefix and the broken files are removed
    store = CheckpointStore(tmp_path)
    restored, loaded = store.load(Trainer.load)
    restored.learn(EVENTS[100:150])
    saved = store.save(restored, loaded, {("events", 0): 150}, {})
    assert [link.sequence for link in saved.chain] == [1, 2, 7]
    assert not (tmp_path / "delta-00000004.seg").exists()
    assert not CheckpointStore(tmp_path).load(Trainer.load)[1].fell_back


def test_a_corrupt_base_falls_back_to_the_previous_chain(tmp_path):
    store, engine = CheckpointStore(tmp_path, compact_ratio=0.01), _trainer()
    manifest = _save_in_steps(store, engine, 2)
    store.wait_for_compaction(30)
    engine.learn(EVENTS[100:150])
    manifest = store.save(engine, manifest, {("events", 0): 150}, {})
    base = manifest.chain[0]
    assert base.sequence >= 2
    store.close()
    (tmp_path / base.name).write_bytes(b"not a zip")
    restored, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    expected = {2: 100, 3: 150}[base.sequence]  # the previous chain ends where this base begins
    assert loaded.fell_back and loaded.offsets == {("events", 0): expected} and restored.event_count == expected


def test_no_usable_base_is_an_error_not_a_fresh_start(tmp_path):
    store, engine = CheckpointStore(tmp_path), _trainer()
    manifest = _save_in_steps(store, engine, 1)
    (tmp_path / manifest.chain[0].name).write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        CheckpointStore(tmp_path).load(Trainer.load)


def test_a_failed_segment_write_makes_the_next_checkpoint_a_base(tmp_path, monkeypatch):
    store, engine = CheckpointStore(tmp_path), _trainer()
    manifest = _save_in_steps(store, engine, 1)
    engine.learn(EVENTS[50:100])
    import streamer.io.state_store as state_store

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_store, "write_archive", full_disk)
    with pytest.raises(OSError):
        store.save(engine, manifest, {("events", 0): 100}, {})
    monkeypatch.undo()
    manifest = store.save(engine, manifest, {("events", 0): 100}, {})
    assert manifest.chain[-1].name.startswith("base-") and len(manifest.chain) == 1
    restored, _ = CheckpointStore(tmp_path).load(Trainer.load)
    assert_identical(engine, restored)


def test_a_format_1_directory_loads_and_goes_on_with_segments(tmp_path):
    """The layout before delta checkpoints: ``engine-<n>.ckpt`` and a format 1 manifest naming it."""
    engine = _trainer()
    engine.learn(EVENTS[:50])
    engine.save(tmp_path / "engine-00000004.ckpt")
    (tmp_path / MANIFEST).write_bytes(orjson.dumps({
        "format": 1, "sequence": 4, "state": "engine-00000004.ckpt", "model_id": "m1",
        "offsets": [["events", 0, 50]], "event_count": 50, "created_at": 1.0, "pending": {"items": ["i3"]}}))
    store = CheckpointStore(tmp_path)
    restored, manifest = store.load(Trainer.load)
    assert manifest.offsets == {("events", 0): 50} and manifest.model_id == "m1" and manifest.pending == {"items": ["i3"]}
    assert_identical(engine, restored)
    restored.learn(EVENTS[50:100])
    saved = store.save(restored, manifest, {("events", 0): 100}, {})
    assert [link.name for link in saved.chain] == ["engine-00000004.ckpt", "delta-00000005.seg"]
    again, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert_identical(restored, again)
    assert orjson.loads((tmp_path / MANIFEST).read_bytes())["format"] == 3


def test_an_unknown_manifest_format_is_refused_with_a_clear_message(tmp_path):
    (tmp_path / MANIFEST).write_bytes(orjson.dumps({"format": 9}))
    with pytest.raises(CheckpointError, match="unknown manifest format 9"):
        CheckpointStore(tmp_path).load(Trainer.load)


def test_the_neighbour_index_lists_survive_a_base_and_segments_on_disk(tmp_path, monkeypatch):
    from streamer.core.neighbours import NeighbourIndex
    from tests.core.test_index_state import QUERIES, _engine

    store, engine = CheckpointStore(tmp_path, compact_ratio=100.0), _engine()
    engine.sync_index()
    manifest = store.save(engine, Manifest(), {("events", 0): 1}, {})
    engine._similar.index.seed = 7  # new lists between the base and the segment
    engine._similar.rebuild(engine._items.arrays, len(engine._items.ids))
    engine.learn([("u", "i1", 1.0), ("u", "i2", 2.0)])
    engine.sync_index()
    manifest = store.save(engine, manifest, {("events", 0): 2}, {})
    assert [link.name[:5] for link in manifest.chain] == ["base-", "delta"]
    restored, _ = CheckpointStore(tmp_path).load(Trainer.load)
    monkeypatch.setattr(NeighbourIndex, "_kmeans", lambda *_: pytest.fail("k-means ran after the load"))
    restored.sync_index()
    assert np.array_equal(restored._similar.index.centroids, engine._similar.index.centroids)
    assert np.array_equal(restored._items.arrays.index_list, engine._items.arrays.index_list)
    assert restored.most_similar_many(QUERIES, 10) == engine.most_similar_many(QUERIES, 10)
