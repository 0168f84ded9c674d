"""The sink's pending ids live in the checkpoint files: a base holds them whole, a segment only what changed since
the file before it, and a restart (or a fallback, or a format 2 directory) gives back the ids owed."""

from __future__ import annotations

import orjson
import redis

from streamer import Trainer
from streamer.core.persistence import read_member
from streamer.io import pending_state
from streamer.io.checkpoint import MANIFEST, CheckpointStore, Manifest
from streamer.io.redis_sink import RedisSink
from streamer.keys import Keys
from streamer.localstack import free_port

EVENTS = [(f"u{index % 7}", f"i{index % 40}", float(index)) for index in range(400)]
CATALOG = [f"cold{index}" for index in range(3000)]


def _trainer() -> Trainer:
    engine = Trainer(vector_size=8, seed=1, replay_passes=0)
    engine.catalog([{"op": "upsert", "item": item} for item in CATALOG])
    return engine


def _member(path) -> dict:
    return orjson.loads(read_member(path, pending_state.MEMBER))


def test_a_segment_holds_only_the_pending_ids_that_changed_and_a_restart_gets_them_all(tmp_path):
    store, engine = CheckpointStore(tmp_path, compact_ratio=100.0), _trainer()
    due = list(CATALOG)  # 3,000 neighbour lists owed (a catalog load)
    manifest = store.save(engine, Manifest(), {("events", 0): 0}, {"items": [], "neighbours": due})
    for step in range(3):
        engine.learn(EVENTS[step * 50:(step + 1) * 50])
        due = due[100:] + [f"i{step}"]  # 100 lists written, one more owed
        manifest = store.save(engine, manifest, {("events", 0): (step + 1) * 50},
                              {"items": [f"i{step}"], "neighbours": due})
    base, *segments = manifest.chain
    assert _member(tmp_path / base.name) == {"full": {"items": [], "neighbours": CATALOG}}
    assert _member(tmp_path / segments[-1].name) == {
        "added": {"items": ["i2"], "neighbours": ["i2"]},
        "removed": {"items": ["i1"], "neighbours": CATALOG[200:300]}}
    assert b"cold" not in (tmp_path / MANIFEST).read_bytes()
    _, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert loaded.pending == {"items": ["i2"], "neighbours": due} and not loaded.fell_back


def test_the_lists_owed_at_a_checkpoint_are_due_again_in_a_restarted_sink(tmp_path):
    client = redis.Redis(port=free_port())  # never connected: marking and snapshots do not talk to Redis
    sink = RedisSink(client, Keys("pending"), None, user_ttl=0, neighbours_count=5)
    store, engine = CheckpointStore(tmp_path), _trainer()
    sink.add_items(CATALOG[:500], 1.0)
    manifest = store.save(engine, Manifest(), {("events", 0): 0}, sink.pending_snapshot())
    engine.learn(EVENTS[:50])
    sink.dirty.clear()  # the vectors were published, the lists not yet
    sink.add_items(["i1"], 2.0)
    store.save(engine, manifest, {("events", 0): 50}, sink.pending_snapshot())
    _, loaded = CheckpointStore(tmp_path).load(Trainer.load)  # a kill -9 here: the restart reads the files
    again = RedisSink(client, Keys("pending"), None, user_ttl=0, neighbours_count=5)
    again.restore_pending(loaded.pending)
    assert set(again.dirty) == {"i1"} and set(again.neighbours_due) == set(CATALOG[:500]) | {"i1"}


def test_after_a_fallback_the_pending_ids_are_the_good_links_and_every_item_is_published_again(tmp_path):
    store, engine = CheckpointStore(tmp_path, compact_ratio=100.0), _trainer()
    manifest = store.save(engine, Manifest(), {("events", 0): 0}, {"items": ["cold1"]})
    engine.learn(EVENTS[:50])
    manifest = store.save(engine, manifest, {("events", 0): 50}, {"items": ["i1"]})
    engine.learn(EVENTS[50:100])
    store.save(engine, manifest, {("events", 0): 100}, {"items": ["i2"]})
    (tmp_path / "delta-00000003.seg").unlink()
    restored, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert loaded.fell_back and loaded.pending["items"] == ["i1"]
    assert set(loaded.pending["republish"]) == set(restored.item_ids())  # the lost file's pending ids: all
    sink = RedisSink(redis.Redis(port=free_port()), Keys("pending"), None, user_ttl=0, neighbours_count=0)
    sink.restore_pending(loaded.pending)
    assert set(sink.republish) == set(restored.item_ids()) - {"i1"} and set(sink.dirty) == {"i1"}


def test_a_compacted_base_holds_the_pending_ids_of_its_state_whole(tmp_path):
    store, engine = CheckpointStore(tmp_path, compact_ratio=0.01), _trainer()
    manifest = Manifest()
    for step in range(3):
        engine.learn(EVENTS[step * 50:(step + 1) * 50])
        manifest = store.save(engine, manifest, {("events", 0): (step + 1) * 50}, {"items": [f"i{step}"]})
        assert store.wait_for_compaction(30)
    assert manifest.chain[0].sequence > 1  # the chain starts at a compacted base
    assert _member(tmp_path / manifest.chain[0].name)["full"]["items"] == [f"i{manifest.chain[0].sequence - 1}"]
    _, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert loaded.pending == {"items": ["i2"]}


def test_a_format_2_directory_keeps_its_manifests_pending_ids_and_the_next_segment_holds_them_whole(tmp_path):
    engine = _trainer()
    engine.learn(EVENTS[:50])
    engine.save(tmp_path / "base-00000004.ckpt")
    link = {"name": "base-00000004.ckpt", "sequence": 4, "bytes": 1, "offsets": [["events", 0, 50]], "event_count": 50}
    (tmp_path / MANIFEST).write_bytes(orjson.dumps({
        "format": 2, "sequence": 4, "model_id": "m1", "created_at": 1.0, "chain": [link], "previous": [],
        "offsets": [["events", 0, 50]], "event_count": 50, "pending": {"neighbours": ["cold7", "cold8"]}}))
    store = CheckpointStore(tmp_path)
    restored, manifest = store.load(Trainer.load)
    assert manifest.pending == {"neighbours": ["cold7", "cold8"]}
    restored.learn(EVENTS[50:100])
    saved = store.save(restored, manifest, {("events", 0): 100}, {"neighbours": ["cold8", "i3"]})
    assert _member(tmp_path / saved.chain[-1].name) == {"full": {"neighbours": ["cold8", "i3"]}}
    _, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert loaded.pending == {"neighbours": ["cold8", "i3"]}
    assert orjson.loads((tmp_path / MANIFEST).read_bytes())["format"] == 3
