"""A delta taken in two steps (rows listed, copied while learning goes on, the rest taken at a consistent point)
restores the state of that point bit for bit, however the copy and the learning interleave."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from streamer import Trainer
from streamer.core import delta
from streamer.io.checkpoint import CheckpointStore, Manifest
from tests.core.test_delta import DEFERRED, _catalog, _copy, assert_identical
from tests.core.test_persistence import SETTINGS, UNBOUNDED, events


@pytest.mark.parametrize("settings", [SETTINGS, UNBOUNDED, DEFERRED], ids=["bounded", "unbounded", "deferred"])
@pytest.mark.parametrize("copy", ["before", "after"], ids=["copied-before-learning", "copied-after-learning"])
def test_rows_copied_while_learning_goes_on_restore_the_state_the_rest_was_taken_at(settings, copy):
    stream = events()
    live = Trainer(**settings)
    live.learn(stream[:50])
    restored = _copy(live)
    delta.start_tracking(live)
    cuts = [50, 97, 200, 333, 401, len(stream)]
    for step, (start, stop) in enumerate(zip(cuts, cuts[1:])):
        live.learn(stream[start:stop], replay=step % 2 == 0)
        if step == 1:
            _catalog(live, step)  # upserts, attributes and a retire (a released row) before the first step
        part = delta.take_rows(live)
        if copy == "before":
            delta.gather_rows(part, {})
        middle = (start + stop) // 2
        live.learn([(user, item, ts + 0.5) for user, item, ts in stream[start:middle]])  # rows change meanwhile
        if step == 2:
            _catalog(live, step + 10)  # released after the first step
        if copy == "after":  # the worst case: every early row that changed is copied at its newer value
            delta.gather_rows(part, {})
        delta.apply(restored, *delta.collect(live, {}, early=part))
        assert_identical(live, restored)


def test_rows_copied_on_another_thread_during_learning_restore_exactly():
    stream = events()
    live = Trainer(**UNBOUNDED)
    live.learn(stream[:200])
    restored = _copy(live)
    delta.start_tracking(live)
    for round_ in range(3):
        live.learn([(user, item, ts + round_) for user, item, ts in stream[200:]])
        part = delta.take_rows(live)
        copier = threading.Thread(target=delta.gather_rows, args=(part, {}))
        copier.start()
        live.learn([(user, item, ts + round_ + 0.5) for user, item, ts in stream[:150]])
        copier.join()
        delta.apply(restored, *delta.collect(live, {}, early=part))
        assert_identical(live, restored)


def test_the_store_prepares_a_segment_off_the_loop_and_a_restart_loads_the_state_it_saved(tmp_path):
    stream = events()
    store, live = CheckpointStore(tmp_path, compact_ratio=100.0), Trainer(**UNBOUNDED)
    live.learn(stream[:100])
    manifest = store.save(live, Manifest(), {("events", 0): 100}, {})
    assert not store.prepare(Trainer(**UNBOUNDED), manifest)  # another engine: its next checkpoint is a base
    live.learn(stream[100:300])
    assert store.prepare(live, manifest) and not store.prepare(live, manifest)  # one first step at a time
    live.learn(stream[300:])
    manifest = store.save(live, manifest, {("events", 0): len(stream)}, {})
    assert store.prepared() and manifest.chain[-1].name.startswith("delta-")
    restored, loaded = CheckpointStore(tmp_path).load(Trainer.load)
    assert_identical(live, restored) and loaded.event_count == live.event_count
    early_rows = np.load(tmp_path / manifest.chain[-1].name)["early.items.rows.npy"]
    assert early_rows.size  # the segment holds rows copied in the first step
