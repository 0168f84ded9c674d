"""``streamer export`` takes the daemon's checkpoint directory (its newest state) as well as a checkpoint file."""

from __future__ import annotations

import numpy as np

from streamer import Trainer
from streamer.cli import main
from streamer.io.checkpoint import CheckpointStore, Manifest


def _read_text_vectors(path) -> dict[str, np.ndarray]:
    lines = path.read_text().splitlines()
    count, size = map(int, lines[0].split())
    vectors = {line.split()[0]: np.array(line.split()[1:], np.float32) for line in lines[1:]}
    assert len(vectors) == count and all(vector.size == size for vector in vectors.values())
    return vectors


def test_export_reads_the_newest_state_of_a_checkpoint_directory(tmp_path, capsys):
    engine = Trainer(vector_size=6, seed=3)
    engine.learn([("u1", "a", 1.0), ("u1", "b", 2.0), ("u2", "a", 3.0)])
    store = CheckpointStore(tmp_path / "state")
    first = store.save(engine, Manifest(), {("events", 0): 3}, {})
    engine.learn([("u1", "c", 4.0), ("u2", "d", 5.0), ("u2", "a", 6.0)])  # the second checkpoint is a delta
    store.save(engine, first, {("events", 0): 6}, {})
    store.close()

    assert main(["export", str(tmp_path / "state"), str(tmp_path / "out.txt")]) == 0
    assert "checkpoint 2, 6 events learned" in capsys.readouterr().out
    exported = _read_text_vectors(tmp_path / "out.txt")
    ids, vectors = engine.vectors()
    assert sorted(exported) == sorted(ids) == ["a", "b", "c", "d"]
    for item, vector in zip(ids, vectors):
        assert np.allclose(exported[item], vector, atol=1e-5)


def test_an_empty_or_missing_checkpoint_directory_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), str(tmp_path / "out.txt")]) == 1
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "out.txt")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [f"streamer: error: {tmp_path / 'empty'}: no checkpoint in this directory (the daemon writes "
                      "one per --checkpoint-interval and when it stops)",
                      f"streamer: error: {tmp_path / 'nothing'}: no such checkpoint file or directory"]
