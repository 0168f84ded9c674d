"""Checkpoint store (atomic manifest + engine file) and the commit order flush → save → commit."""

from __future__ import annotations

import pytest

from streamer import Trainer
from streamer.errors import CheckpointError
from streamer.io.checkpoint import MANIFEST, Checkpoint, CheckpointStore, Manifest


def _engine(events: int = 6) -> Trainer:
    engine = Trainer(vector_size=4, seed=1, subsample=0.0)
    engine.learn([(f"u{i % 2}", f"i{i % 3}", float(i)) for i in range(events)])
    return engine


def test_save_then_load_round_trips_state_offsets_and_pending(tmp_path):
    store = CheckpointStore(tmp_path / "state")
    engine, fresh = store.load(Trainer.load)
    assert engine is None and fresh.sequence == 0
    engine = _engine()
    saved = store.save(engine, fresh, {("events", 0): 6, ("events", 1): 2}, {"items": ["i1"]})
    engine.learn([("u0", "i0", 6.0), ("u1", "i1", 7.0)])
    second = store.save(engine, saved, {("events", 0): 8, ("events", 1): 2}, {})
    loaded, manifest = CheckpointStore(tmp_path / "state").load(Trainer.load)
    assert manifest.sequence == 2 and manifest.model_id == fresh.model_id == second.model_id
    assert manifest.offsets == {("events", 0): 8, ("events", 1): 2}
    assert loaded.event_count == manifest.event_count == 8
    assert sorted(path.name for path in (tmp_path / "state").iterdir()) == [
        "base-00000001.ckpt", "delta-00000002.seg", MANIFEST]  # a base, then what changed


def test_corrupt_manifest_is_an_error_not_a_fresh_start(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(_engine(), Manifest(), {("events", 0): 6}, {})
    (tmp_path / MANIFEST).write_bytes(b'{"format": 1, "sequence": ')
    with pytest.raises(CheckpointError):
        store.load(Trainer.load)


def test_leftover_temporary_files_are_removed_on_load(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(_engine(), Manifest(), {}, {})
    (tmp_path / ".engine-00000002.ckpt.abc.tmp").write_bytes(b"half written")
    store.load(Trainer.load)
    assert not list(tmp_path.glob(".*.tmp"))


class Recorder:
    """Fake sinks and source that record the order of calls."""

    def __init__(self, published: bool = True, in_flight: set | None = None):
        self.calls, self.published, self.learned = [], published, {("events", 0): 6}
        self.in_flight = in_flight or set()

    def publish(self, force):
        self.calls.append("flush_redis")
        return set(self.in_flight) if self.published else None

    def flush(self):
        self.calls.append("flush_dead_letters")

    def commit(self, offsets):
        self.calls.append(("commit", dict(offsets)))
        return True

    def pending(self):
        return {"items": [] if self.published else ["i1"]}


class RecordingStore(CheckpointStore):
    def __init__(self, directory, recorder):
        super().__init__(directory)
        self.recorder = recorder

    def begin(self, engine, manifest, offsets, pending, background=True, topic_ids=None):
        self.recorder.calls.append(("save", dict(offsets), tuple(pending["items"])))
        return super().begin(engine, manifest, offsets, pending, background, topic_ids)


def _checkpoint(tmp_path, recorder) -> Checkpoint:
    return Checkpoint(RecordingStore(tmp_path, recorder), Manifest(), recorder.publish, recorder, recorder,
                      recorder.pending, in_flight=lambda: set(recorder.in_flight))


def test_order_is_flush_then_save_then_commit(tmp_path):
    recorder = Recorder()
    assert _checkpoint(tmp_path, recorder).commit(_engine())
    assert recorder.calls == ["flush_redis", "flush_dead_letters", ("save", {("events", 0): 6}, ()),
                              ("commit", {("events", 0): 6})]


def test_redis_down_saves_pending_ids_but_defers_the_commit(tmp_path):
    recorder = Recorder(published=False)
    checkpoint = _checkpoint(tmp_path, recorder)
    assert not checkpoint.commit(_engine())
    assert ("save", {("events", 0): 6}, ("i1",)) in recorder.calls
    assert not any(call[0] == "commit" for call in recorder.calls if isinstance(call, tuple))
    recorder.published, recorder.calls = True, []
    assert checkpoint.commit(_engine())  # Redis back: nothing new to save, but the commit happens now
    assert recorder.calls == ["flush_redis", "flush_dead_letters", ("commit", {("events", 0): 6})]


def test_nothing_new_means_no_new_checkpoint(tmp_path):
    recorder = Recorder()
    checkpoint = _checkpoint(tmp_path, recorder)
    engine = _engine()
    checkpoint.commit(engine)
    recorder.calls = []
    assert checkpoint.commit(engine)
    assert recorder.calls == ["flush_redis", "flush_dead_letters"]
    recorder.learned = {("events", 0): 9}
    engine.learn([("u9", "i9", 10.0)])
    checkpoint.commit(engine)
    assert [call[0] for call in recorder.calls if isinstance(call, tuple)] == ["save", "commit"]


def test_replay_paid_without_new_events_is_saved(tmp_path):
    """Spare-time replay changes the state but neither the offsets nor the event count: a checkpoint (a stop's)
    must still save it, or a restart redoes the paid draws and the state no longer matches Redis."""
    recorder = Recorder()
    checkpoint = _checkpoint(tmp_path, recorder)
    engine = Trainer(vector_size=4, seed=1, subsample=0.0, replay_passes=3, replay_buffer=100)
    engine.learn([(f"u{i % 2}", f"i{i % 3}", float(i)) for i in range(20)], replay=False)
    checkpoint.commit(engine)
    owed = engine.replay_debt
    assert owed > 0
    engine.replay()
    recorder.calls = []
    assert checkpoint.commit(engine, force=True)
    assert [call[0] for call in recorder.calls if isinstance(call, tuple)] == ["save", "commit"]
    restored, _ = CheckpointStore(tmp_path).load(Trainer.load)
    assert restored.replay_debt == 0


def test_background_checkpoint_commits_only_once_its_write_is_linked(tmp_path):
    recorder = Recorder()
    checkpoint = _background_checkpoint(tmp_path, recorder)
    engine = _engine()
    assert checkpoint.commit(engine)  # the first one is a base, written at once
    engine.learn([("u9", "i9", 10.0)])
    recorder.learned, recorder.calls = {("events", 0): 7}, []
    assert not checkpoint.commit(engine)  # the segment is being written: no commit yet
    assert not any(call[0] == "commit" for call in recorder.calls if isinstance(call, tuple))
    assert checkpoint.in_flight
    _wait_settled(checkpoint)
    assert recorder.calls[-1] == ("commit", {("events", 0): 7}) and not checkpoint.in_flight
    restored, manifest = CheckpointStore(tmp_path).load(Trainer.load)
    assert manifest.offsets == {("events", 0): 7} and restored.event_count == engine.event_count
    engine.learn([("u9", "i8", 11.0)])
    recorder.learned = {("events", 0): 8}
    assert checkpoint.commit(engine, force=True)  # a stop's checkpoint waits and commits
    assert CheckpointStore(tmp_path).load(Trainer.load)[1].offsets == {("events", 0): 8}


def test_the_commit_waits_for_the_snapshots_in_flight_without_blocking(tmp_path):
    recorder = Recorder(in_flight={3, 4})
    checkpoint = _checkpoint(tmp_path, recorder)
    assert not checkpoint.commit(_engine())  # saved; the commit waits for snapshots 3 and 4
    assert recorder.calls == ["flush_redis", "flush_dead_letters", ("save", {("events", 0): 6}, ())]
    assert not checkpoint.settled(2, True)  # an older snapshot: not waited for
    assert not checkpoint.settled(3, True)
    assert checkpoint.settled(4, True)  # the last one written: the offsets are committed now
    assert recorder.calls[-1] == ("commit", {("events", 0): 6})


def test_a_failed_snapshot_drops_the_wait_and_a_later_checkpoint_commits(tmp_path):
    recorder = Recorder(in_flight={5})
    checkpoint = _checkpoint(tmp_path, recorder)
    assert not checkpoint.commit(_engine())
    assert not checkpoint.settled(5, False)  # Redis failed: its ids are pending again
    assert not any(call[0] == "commit" for call in recorder.calls if isinstance(call, tuple))
    recorder.in_flight, recorder.calls = set(), []
    assert checkpoint.commit(_engine())  # written since: nothing new to save, the commit happens now
    assert recorder.calls == ["flush_redis", "flush_dead_letters", ("commit", {("events", 0): 6})]


def test_a_waiting_commit_is_dropped_when_a_partition_was_read_again_meanwhile(tmp_path):
    recorder = Recorder(in_flight={7})
    checkpoint = _checkpoint(tmp_path, recorder)
    assert not checkpoint.commit(_engine())  # offsets 6 saved, the commit waits for snapshot 7
    recorder.learned = {("events", 0): 2}  # the topic was recreated: the partition is read from 0 again
    assert not checkpoint.settled(7, True)  # committing 6 now would name an offset of the old topic
    assert not any(call[0] == "commit" for call in recorder.calls if isinstance(call, tuple))


def _background_checkpoint(tmp_path, recorder) -> Checkpoint:
    return Checkpoint(RecordingStore(tmp_path, recorder), Manifest(), recorder.publish, recorder, recorder,
                      recorder.pending, background=True)


def _past_the_rows(checkpoint) -> None:
    """Settle until the first step of a segment (its rows copied off the loop) is over and its write started."""
    import time

    deadline = time.monotonic() + 30
    while checkpoint._preparing is not None and time.monotonic() < deadline:
        checkpoint.settle()
        time.sleep(0.01)
    assert checkpoint._preparing is None


def _wait_settled(checkpoint) -> bool | None:
    import time

    deadline = time.monotonic() + 30
    while (outcome := checkpoint.settle()) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return outcome


def test_a_commit_is_dropped_when_a_partition_was_read_again_while_its_state_was_written(tmp_path):
    """The soak's double count: offsets taken before a recreated topic was read again from its beginning, committed
    once the background write was linked, named the old topic's positions on the new one."""
    recorder = Recorder()
    recorder.reread_mark = 0
    checkpoint = _background_checkpoint(tmp_path, recorder)
    engine = _engine()
    assert checkpoint.commit(engine)  # the first one is a base, written at once
    engine.learn([("u9", "i9", 10.0)])
    recorder.learned, recorder.calls = {("events", 0): 7}, []
    assert not checkpoint.commit(engine)  # the segment's rows are being copied
    _past_the_rows(checkpoint)  # the checkpoint itself ran: offsets 7 taken, the segment being written
    recorder.reread_mark, recorder.learned = 1, {("events", 0): 9}  # the new topic, read from 0 past offset 7
    assert _wait_settled(checkpoint) is False
    assert not any(call[0] == "commit" for call in recorder.calls if isinstance(call, tuple))
    engine.learn([("u9", "i8", 11.0)])
    assert checkpoint.commit(engine, force=True)  # offsets taken after the reread are committed
    assert recorder.calls[-1] == ("commit", {("events", 0): 9})


def test_a_waiting_commit_is_dropped_after_a_reread_even_once_the_new_topic_passed_its_offsets(tmp_path):
    recorder = Recorder(in_flight={7})
    recorder.reread_mark = 0
    checkpoint = _checkpoint(tmp_path, recorder)
    assert not checkpoint.commit(_engine())  # offsets 6 saved, the commit waits for snapshot 7
    recorder.reread_mark, recorder.learned = 1, {("events", 0): 8}  # read again from 0, now past 6
    assert not checkpoint.settled(7, True)
    assert not any(call[0] == "commit" for call in recorder.calls if isinstance(call, tuple))
