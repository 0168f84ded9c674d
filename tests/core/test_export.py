"""word2vec text/binary export, read back by gensim, and the ``streamer export`` command."""

import numpy as np
import pytest

from streamer import Trainer
from streamer.cli import main
from streamer.core.export import write_word2vec

from tests.core.synthetic import clustered_events

gensim_models = pytest.importorskip("gensim.models")


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_the_export(tmp_path, binary):
    trainer = Trainer(vector_size=12, seed=1)
    trainer.learn(clustered_events(sessions=30) + [("u", "with space", 1e9), ("u", "ünïcode", 1e9 + 1)])
    ids, vectors = trainer.vectors()
    path = tmp_path / "vectors.w2v"
    with open(path, "wb") as stream:
        assert write_word2vec(stream, ids, vectors, binary=binary) == len(ids)
    loaded = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert len(loaded.index_to_key) == len(ids)
    assert np.allclose(loaded["c0_i1"], trainer.vector("c0_i1"), atol=1e-6)
    assert np.allclose(loaded["with_space"], trainer.vector("with space"), atol=1e-6)
    assert np.allclose(loaded["ünïcode"], trainer.vector("ünïcode"), atol=1e-6)


def test_export_command(tmp_path, capsys):
    trainer = Trainer(vector_size=8)
    trainer.learn(clustered_events(sessions=10))
    trainer.save(tmp_path / "model.ckpt")
    assert main(["export", str(tmp_path / "model.ckpt"), str(tmp_path / "out.bin"), "--binary"]) == 0
    loaded = gensim_models.KeyedVectors.load_word2vec_format(str(tmp_path / "out.bin"), binary=True)
    assert len(loaded.index_to_key) == trainer.item_count
    assert main(["export", str(tmp_path / "missing.ckpt"), str(tmp_path / "out.txt")]) == 1
    assert "checkpoint" in capsys.readouterr().err
