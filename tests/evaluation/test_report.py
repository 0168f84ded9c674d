import json

import pytest

from streamer.evaluation.baselines import CooccurrenceModel, PopularityModel
from streamer.evaluation.protocol import evaluate, split_events
from streamer.evaluation.report import format_table, pooled_hit_rates, result_document, write_json, write_plot
from tests.evaluation.tiny_log import TINY_LOG


@pytest.fixture()
def document_and_results():
    split = split_events(TINY_LOG, slices=2)
    results = [evaluate(CooccurrenceModel(), split), evaluate(PopularityModel(), split)]
    return result_document("tiny", split, results, seed=1), results


def test_table_has_one_row_per_model_with_the_protocol_columns(document_and_results):
    _, results = document_and_results
    lines = format_table(results).splitlines()
    assert lines[0].split() == ["model", "HR@10", "MRR@10", "HR@10", "new", "new", "pairs", "coverage", "pairs",
                                "learn", "s"]
    cooc = lines[2].split()
    assert cooc[:7] == ["cooc", "0.5000", f"{(1 + 1 + 1 / 3) / 6:.4f}", "0.5000", "2", "1.000", "6"]
    assert lines[3].split()[0] == "popular"


def test_json_round_trip_keeps_totals_and_per_slice_hit_rates(tmp_path, document_and_results):
    document, _ = document_and_results
    loaded = json.loads(write_json(document, tmp_path / "out" / "tiny.json").read_text())
    assert (loaded["dataset"], loaded["slices"], loaded["k"], loaded["events"], loaded["warmup_events"]) == (
        "tiny", 2, 10, 19, 8)
    cooc = loaded["models"][0]
    assert (cooc["name"], cooc["pairs"], cooc["hits"], cooc["new_pairs"], cooc["new_hits"]) == ("cooc", 6, 3, 2, 1)
    assert [chunk["hit_rate"] for chunk in cooc["slices"]] == pytest.approx([1 / 3, 2 / 3])


def test_plot_is_written_as_png(tmp_path, document_and_results):
    document, _ = document_and_results
    path = write_plot(document, tmp_path / "tiny.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_pooled_hit_rates_weight_by_pairs_and_leave_gaps_for_empty_runs():
    slices = [{"pairs": 2, "hits": 1}, {"pairs": 0, "hits": 0}, {"pairs": 4, "hits": 1}, {"pairs": 0, "hits": 0}]
    assert pooled_hit_rates(slices, 2) == ([1.5, 3.5], [0.5, 0.25])
    positions, rates = pooled_hit_rates(slices, 1)
    assert positions == [1, 2, 3, 4] and rates[0] == 0.5 and rates[1] != rates[1]  # NaN gap
