"""``streamer bench``: one report with every section, ratios computed from the measured numbers.

No timing assertions: the numbers are whatever this machine measures; only their presence, their
consistency with the ratios and the report files are checked.
"""

from __future__ import annotations

import json

import pytest

from streamer.benchmarks.report import SECTIONS, compute_ratios, markdown_report
from streamer.cli import main

HAND_MADE = {
    "machine": {"cores": 2, "cpu": "Test CPU", "memory_bytes": 8 * 2 ** 30, "load_average_before": (0.5, 0, 0),
                "load_average_after": (1.5, 0, 0), "platform": "Linux-test", "python": "3.11.7"},
    "sections": {
        "training": {"streamer_tokens_per_second": 600.0, "streamer_2_workers_tokens_per_second": 600.0,
                     "gensim_tokens_per_second": {"1": 200.0, "2": 400.0}},
        "memory": {"items": 1000, "vector_size": 64, "peak_rss_bytes": 1024 * 1000, "raw_vector_bytes_per_item": 512},
        "daemon": {"daemon_events_per_second": 90.0, "raw_consume_events_per_second": 100.0, "target_rate": 50.0,
                   "offered_events_per_second": 40.0, "freshness_p50_seconds": 0.1, "freshness_p99_seconds": 0.5,
                   "raw_consume_cpu_seconds_per_event": 0.003, "daemon_learner_cpu_seconds_per_event": 0.004,
                   "daemon_fetcher_cpu_seconds_per_event": 0.002, "cores": 2,
                   "learning_alone_events_per_second": 70.0},
        "lookup": {"operations": {"ping": {"p50_us": 20.0, "p99_us": 40.0},
                                  "vector": {"p50_us": 30.0, "p99_us": 100.0}}},
    },
}


def test_each_target_says_met_or_not_and_an_unmeasured_fetch_process_says_so():
    import copy

    document = copy.deepcopy(HAND_MADE)
    daemon = document["sections"]["daemon"]
    daemon.update(daemon_events_per_second=80.0, freshness_p99_seconds=1.5, daemon_fetcher_cpu_seconds_per_event=None)
    document["sections"]["lookup"]["operations"]["vector"]["p99_us"] = 301.0
    text = markdown_report({**document, "ratios": compute_ratios(document["sections"]), "command": "streamer bench"})
    assert "| 80 | 100 | 0.800 | ≥ 0.9: not met |" in text
    assert "| 1.50 of 1 s | p99 ≤ 1 s: not met |" in text and "p99 ≤ 300 µs: not met |" in text
    assert "| 4,000.00 + not measured | 3,000.00 | n/a | - |" in text and "+ 0.00" not in text
    assert "| n/a | 2 | - | - |" in text


def test_ratios_and_markdown_of_a_hand_made_report():
    ratios = compute_ratios(HAND_MADE["sections"])
    assert ratios["training"] == {"streamer_vs_gensim_1_worker": 3.0, "streamer_vs_gensim_2_workers": 1.5}
    assert ratios["memory"] == {"peak_rss_bytes_per_item": 1024.0, "peak_rss_vs_raw_vectors": 2.0}
    assert ratios["daemon"]["daemon_vs_raw_consume"] == pytest.approx(0.9)
    assert ratios["daemon"]["freshness_p99_vs_target"] == pytest.approx(0.5)
    assert ratios["daemon"]["cpu_per_event_vs_raw_consume"] == pytest.approx(2.0)  # (4 + 2) ms vs 3 ms
    assert ratios["daemon"]["cores_needed_for_target"] == pytest.approx(0.54)  # 6 ms x 0.9 x 100 events/s
    assert ratios["daemon"]["learning_alone_vs_raw_consume"] == pytest.approx(0.7)
    assert ratios["lookup"] == {"vector": {"p50_vs_ping": 1.5, "p99_vs_ping": 2.5}}
    text = markdown_report({**HAND_MADE, "ratios": ratios, "command": "streamer bench"})
    assert "2 cores (Test CPU), 8.0 GiB RAM, load average 0.50 / 1.50" in text
    assert "| 600 | 200 | 3.00x | ≥ 1.0: met |" in text and "| 600 | 400 | 1.50x | ≥ 1.0: met |" in text
    assert "| 90 | 100 | 0.900 | ≥ 0.9: met |" in text and "| 0.50 of 1 s | p99 ≤ 1 s: met |" in text
    assert "100 / 500 ms" in text and "30 / 100 µs | 20 / 40 µs | 1.50 / 2.50x | p99 ≤ 300 µs: met |" in text
    assert "| 4,000.00 + 2,000.00 | 3,000.00 | 2.00x | - |" in text and "| 0.54 | 2 | - | - |" in text
    assert "| 70 | 100 | 0.700 | - |" in text


def test_the_daemon_benchmark_takes_engine_knobs_and_refuses_unknown_ones(tmp_path):
    from streamer.benchmarks.suite import load_ops

    bench = load_ops("bench_daemon")
    assert bench.parse_knobs(["interleaved_passes=0", "replay-passes = 4"]) == {"interleaved_passes": "0",
                                                                               "replay_passes": "4"}
    for wrong in (["interleaved_passes"], ["no_such_knob=1"]):
        with pytest.raises(ValueError):
            bench.parse_knobs(wrong)
    stack = type("Stack", (), {"bootstrap_servers": "127.0.0.1:1", "redis_url": "redis://127.0.0.1:1"})()
    bench.KNOBS.update(interleaved_passes="0", workers="2")
    try:
        settings = bench._settings(stack, "topic", "name", tmp_path)
    finally:
        bench.KNOBS.clear()
    assert settings.engine_knobs == {"interleaved_passes": 0, "workers": 2}


def test_a_failed_section_is_reported_not_hidden():
    sections = {**HAND_MADE["sections"], "daemon": {"error": "BenchError: broker did not start"}}
    ratios = compute_ratios(sections)
    assert "daemon" not in ratios
    assert "- daemon: not measured (BenchError: broker did not start)" in markdown_report(
        {**HAND_MADE, "sections": sections, "ratios": ratios})


@pytest.mark.integration
def test_quick_bench_writes_every_section_with_ratios_from_its_numbers(tmp_path, capsys):
    code = main(["bench", "--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr()
    document = json.loads((tmp_path / "bench.json").read_text())
    failed = {name: section.get("error") for name, section in document["sections"].items() if "error" in section}
    assert code == 0 and not failed, failed
    assert list(document["sections"]) == list(SECTIONS)
    machine = document["machine"]
    assert machine["cores"] >= 1 and machine["memory_bytes"] > 0 and len(machine["load_average_before"]) == 3
    training, memory = document["sections"]["training"], document["sections"]["memory"]
    daemon, lookup = document["sections"]["daemon"], document["sections"]["lookup"]
    ratios = document["ratios"]
    assert ratios["training"]["streamer_vs_gensim_1_worker"] == pytest.approx(
        training["streamer_tokens_per_second"] / training["gensim_tokens_per_second"]["1"])
    assert ratios["training"]["streamer_vs_gensim_2_workers"] == pytest.approx(
        training["streamer_2_workers_tokens_per_second"] / training["gensim_tokens_per_second"]["2"])
    assert memory["items"] == 100_000 and ratios["memory"]["peak_rss_bytes_per_item"] == pytest.approx(
        memory["peak_rss_bytes"] / memory["items"])
    assert ratios["daemon"]["daemon_vs_raw_consume"] == pytest.approx(
        daemon["daemon_events_per_second"] / daemon["raw_consume_events_per_second"])
    assert 0 < daemon["freshness_p50_seconds"] <= daemon["freshness_p99_seconds"]
    assert daemon["raw_consume_cpu_seconds_per_event"] > 0 and daemon["daemon_learner_cpu_seconds_per_event"] > 0
    fetcher = daemon["daemon_fetcher_cpu_seconds_per_event"]  # the default fetcher is a process (Linux /proc)
    assert fetcher is None or fetcher > 0  # None: too little processor time to measure ("not measured", never 0)
    if fetcher is None:  # a part not measured: no core count from it either
        assert ratios["daemon"]["cores_needed_for_target"] is None
    else:
        assert ratios["daemon"]["cores_needed_for_target"] == pytest.approx(
            (daemon["daemon_learner_cpu_seconds_per_event"] + fetcher) * 0.9 * daemon["raw_consume_events_per_second"])
    assert daemon["learning_alone_events_per_second"] > 0 and daemon["learning_alone_cpu_seconds_per_event"] > 0
    assert ratios["daemon"]["learning_alone_vs_raw_consume"] == pytest.approx(
        daemon["learning_alone_events_per_second"] / daemon["raw_consume_events_per_second"])
    assert set(lookup["operations"]) == {"ping", "vector", "vectors(100)", "similar"}
    assert ratios["lookup"]["similar"]["p99_vs_ping"] == pytest.approx(
        lookup["operations"]["similar"]["p99_us"] / lookup["operations"]["ping"]["p99_us"])
    neighbours = document["sections"]["neighbours"]
    assert neighbours["items"] == 50_000 and 0 <= neighbours["recall_at_10"] <= 1
    assert ratios["neighbours"]["index_vs_exact"] == pytest.approx(
        neighbours["index_lists_per_second"] / neighbours["exact_lists_per_second"])
    assert neighbours["memory"]["index_bytes"] > 0 and neighbours["freshness"]["lists_written"] > 0
    assert neighbours["index_after_load_seconds"] > 0 and neighbours["index_trainings_after_load"] == 0  # lists kept
    table = (tmp_path / "bench.md").read_text()
    assert f"Machine: {machine['cores']} cores" in table
    for heading in ("training tokens/s", "peak RSS", "end-to-end events/s", "freshness p50 / p99", "processor µs per event",
                    "cores the daemon needs", "learning alone events/s", "lookup `vector`",
                    "lookup `vectors(100)`", "lookup `similar`", "neighbour lists/s", "recall@10 of the index"):
        assert heading in table and heading in printed.out


def test_scale_section_ratios_and_rows():
    size = {"items": 1000, "learning_events_per_second": 100.0, "growing_events_per_second": 95.0,
            "growing_slowdown": 0.05, "rss_bytes": 2 ** 30, "peak_rss_bytes": 2 ** 31, "restore_seconds": 2.5,
            "restore_chain_files": 3, "category_members": 10, "upsert_microseconds": 40.0,
            "checkpoint": {"checkpoint_seconds": 0.5, "checkpoint_bytes": 2 ** 20, "base_bytes": 2 ** 24,
                           "base_seconds": 1.0},
            "memory_bytes": {"vectors": 500, "id_maps": 900, "sessions": 10, "capacity_rows": 10 ** 9}}
    ratios = compute_ratios({"scale": {"vector_size": 64, "sizes": [size]}})["scale"]["1000"]
    assert ratios == {"checkpoint_vs_target": 0.5, "checkpoint_vs_base_bytes": 1 / 16, "largest_structure": "id_maps"}
    text = markdown_report({"machine": HAND_MADE["machine"], "sections": {"scale": {"sizes": [size]}},
                            "ratios": {"scale": {"1000": ratios}}})
    assert "| 0.50 s (0.50 s) | 1 MiB | 0.062 of the base | < 1 s: met |" in text
    assert "| 100 | 95 | 0.050 slower | < 0.1 slower: met |" in text
    assert "id_maps 0 MiB" in text and "2.5 s (3)" in text


def test_processor_time_below_the_clock_tick_resolution_is_not_a_measure():
    from streamer.benchmarks.suite import load_ops

    bench = load_ops("bench_daemon")
    assert bench._per_event(10.0, 10.0, 5000, bench.PROC_RESOLUTION) is None  # a fetch process that read ahead
    assert bench._per_event(10.0, 10.01, 5000, bench.PROC_RESOLUTION) is None  # one tick: not a measure
    assert bench._per_event(10.0, 10.5, 5000, bench.PROC_RESOLUTION) == pytest.approx(1e-4)


def test_every_section_offered_has_a_measure():
    from streamer.benchmarks.report import OPTIONAL_SECTIONS
    from streamer.benchmarks.suite import MEASURES

    assert set(SECTIONS) | set(OPTIONAL_SECTIONS) <= set(MEASURES)
