"""``streamer eval --via-kafka``: the served path (Kafka → daemon → Redis) scores like the in-process engine."""

from __future__ import annotations

import json

import pytest

from streamer.cli import main
from streamer.evaluation.kafka_models import evaluate_in_step
from streamer.evaluation.protocol import split_events

TOLERANCE = 0.01


class _Recorder:
    """A shared learner seen through one view: records what each view was asked and what was learned."""

    def __init__(self, log: list, name: str):
        self.log, self.name = log, name

    def learn(self, events) -> None:
        self.log.append(("learn", [item for _, item, _ in events]))

    def rank(self, query_items, k):
        self.log.append((f"rank {self.name}", list(query_items)))
        return [["b"] for _ in query_items]


def test_in_step_scores_every_view_before_the_one_shared_learn_of_each_slice():
    events = [("u", "a", 0), ("u", "b", 60), ("w", "a", 810), ("w", "b", 820), ("v", "a", 950), ("v", "b", 1000)]
    split = split_events(events, slices=2)
    log: list = []
    first, second = _Recorder(log, "first"), _Recorder(log, "second")
    results = evaluate_in_step([first, second], split, k=10)
    kinds = [entry[0] for entry in log]
    assert kinds == ["learn", "rank first", "rank second", "learn", "rank first", "rank second", "learn"]
    assert [entry[1] for entry in log if entry[0] == "learn"] == [["a", "b"], ["a", "b"], ["a", "b"]]
    assert [result.name for result in results] == ["first", "second"]
    assert all(result.hits == result.pairs == 2 for result in results)  # a -> b in both slices, both views


@pytest.mark.integration
def test_served_path_scores_within_tolerance_of_the_in_process_engine(kafka_bootstrap, redis_url, tmp_path, capsys,
                                                                       data_root):
    out = tmp_path / "results"
    code = main(["eval", "diginetica", "--slices", "5", "--models", "streamer,streamer-cosine", "--via-kafka",
                 "--bootstrap-servers", kafka_bootstrap, "--redis-url", redis_url, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "streamer-cosine@kafka" in captured.out
    document = json.loads((out / "diginetica-S5.json").read_text())
    assert document["via_kafka"] is True
    models = {model["name"]: model for model in document["models"]}
    assert set(models) == {"streamer", "streamer-cosine", "streamer@kafka", "streamer-cosine@kafka"}
    for name in ("streamer", "streamer-cosine"):
        in_process, served = models[name], models[f"{name}@kafka"]
        assert served["pairs"] == in_process["pairs"] > 1000
        assert in_process["hits"] > 20  # a comparison of two zeros would prove nothing
        assert served["hit_rate"] == pytest.approx(in_process["hit_rate"], abs=TOLERANCE), name
        assert served["coverage"] == pytest.approx(in_process["coverage"], abs=TOLERANCE), name
        assert served["mean_reciprocal_rank"] == pytest.approx(in_process["mean_reciprocal_rank"], abs=TOLERANCE)
        per_slice = [(a["hit_rate"], b["hit_rate"]) for a, b in zip(in_process["slices"], served["slices"])]
        assert all(abs(a - b) <= 3 * TOLERANCE for a, b in per_slice), per_slice


@pytest.mark.integration
@pytest.mark.slow
def test_served_path_with_the_catalog_scores_within_tolerance_of_the_in_process_engine(
        kafka_bootstrap, redis_url, tmp_path, capsys, data_root):
    out = tmp_path / "results"
    code = main(["eval", "diginetica", "--slices", "5", "--models", "streamer", "--catalog", "--via-kafka",
                 "--bootstrap-servers", kafka_bootstrap, "--redis-url", redis_url, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    models = {model["name"]: model for model in json.loads((out / "diginetica-S5.json").read_text())["models"]}
    assert set(models) == {"streamer", "streamer+catalog", "streamer@kafka+catalog"}
    in_process, served = models["streamer+catalog"], models["streamer@kafka+catalog"]
    assert in_process["hits"] > models["streamer"]["hits"]  # the catalog is used, in process
    assert served["pairs"] == in_process["pairs"] > 1000
    assert served["hit_rate"] == pytest.approx(in_process["hit_rate"], abs=TOLERANCE)
    assert served["mean_reciprocal_rank"] == pytest.approx(in_process["mean_reciprocal_rank"], abs=TOLERANCE)
