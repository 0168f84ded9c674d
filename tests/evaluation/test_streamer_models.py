import numpy as np
import pytest

from streamer.evaluation.protocol import evaluate, split_events
from streamer.evaluation.streamer_models import StreamerCosineModel, StreamerModel
from tests.evaluation.tiny_log import TINY_LOG


class FakeTrainer:
    """Stands in for streamer.Trainer: fixed 2-d vectors per item; most_similar returns the query itself first."""

    VECTORS = {"a": (1.0, 0.0), "b": (0.9, 0.1), "c": (0.0, 1.0), "e": (0.8, 0.3)}

    def __init__(self):
        self.seen, self.learned = [], []

    def learn(self, events):
        self.learned.append(len(events))
        self.seen = list(dict.fromkeys(self.seen + [item for _, item, _ in events if item in self.VECTORS]))

    def vectors(self):
        return list(self.seen), np.array([self.VECTORS[item] for item in self.seen], dtype=np.float32).reshape(-1, 2)

    def most_similar(self, item, k):
        return [(item, 1.0)] + [(other, 0.5) for other in reversed(self.seen) if other != item][:k]


def test_streamer_model_ranks_with_most_similar_query_excluded_unknown_is_miss():
    model = StreamerModel(trainer=FakeTrainer())
    model.learn([("u", "a", 0), ("u", "b", 1), ("u", "c", 2), ("u", "x", 3)])
    assert model.rank(["a", "x", "zz"], k=2) == [["c", "b"], None, None]
    model.learn([("u", "e", 4)])  # the known-item set follows learning
    assert model.rank(["e"], k=1) == [["c"]]


def test_streamer_cosine_model_ranks_by_cosine_on_trainer_vectors():
    model = StreamerCosineModel(trainer=FakeTrainer())
    model.learn([("u", "a", 0), ("u", "b", 1), ("u", "c", 2), ("u", "e", 3)])
    assert model.rank(["a", "x"], k=2) == [["b", "e"], None]


def test_adapters_run_under_the_protocol():
    trainer = FakeTrainer()
    result = evaluate(StreamerCosineModel(trainer=trainer), split_events(TINY_LOG, slices=2))
    assert trainer.learned == [8, 5, 6] and result.pairs == 6
    assert result.covered == 5  # x has no vector in the fake


def test_real_trainer_is_driven_through_its_public_api():
    pytest.importorskip("streamer.core.trainer")
    split = split_events(TINY_LOG * 1, slices=2)
    for model in (StreamerModel(seed=1), StreamerCosineModel(seed=1)):
        result = evaluate(model, split)
        assert result.pairs == 6 and result.covered >= 4
