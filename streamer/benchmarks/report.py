"""Pure part of ``streamer bench``: ratios from measured numbers, the machine line, JSON-able document, Markdown.

Nothing here measures or does I/O; :mod:`streamer.benchmarks.suite` measures and fills a document::

    {"machine": {...}, "settings": {...}, "sections": {"training": ..., "memory": ..., "daemon": ...,
     "lookup": ...}}

:func:`compute_ratios` derives every ratio from those numbers, so a ratio can never disagree with them.

>>> compute_ratios({"training": {"streamer_tokens_per_second": 300.0, "streamer_2_workers_tokens_per_second": 450.0,
...                              "gensim_tokens_per_second": {"1": 100.0, "2": 150.0}}})["training"]
{'streamer_vs_gensim_1_worker': 3.0, 'streamer_vs_gensim_2_workers': 3.0}
"""

from __future__ import annotations

from typing import Any

__all__ = ["SECTIONS", "OPTIONAL_SECTIONS", "TARGETS", "compute_ratios", "describe_machine", "markdown_report", "text_report"]

SECTIONS = ("training", "memory", "daemon", "lookup", "neighbours")  # the default set
OPTIONAL_SECTIONS = ("scale", "spare_replay")  # minutes and gigabytes: only when asked for (--sections scale)
TARGETS = {"daemon_vs_raw_consume": 0.9, "freshness_p99_seconds": 1.0, "lookup_p99_microseconds": 300.0,
           "checkpoint_seconds_at_10k_events": 1.0, "growing_slowdown": 0.1,
           "index_lists_per_second": 5000.0, "replay_draws_per_second": 100_000.0}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _training_ratios(training: dict) -> dict:
    """Each side with the same number of threads: Trainer(workers=N) vs gensim workers=N."""
    gensim = training["gensim_tokens_per_second"]
    return {"streamer_vs_gensim_1_worker": _ratio(training["streamer_tokens_per_second"], gensim.get("1")),
            "streamer_vs_gensim_2_workers": _ratio(training.get("streamer_2_workers_tokens_per_second"), gensim.get("2"))}


def _memory_ratios(memory: dict) -> dict:
    per_item = _ratio(memory["peak_rss_bytes"], memory["items"])
    return {"peak_rss_bytes_per_item": per_item,
            "peak_rss_vs_raw_vectors": _ratio(per_item, memory["raw_vector_bytes_per_item"])}


def _daemon_cpu_per_event(daemon: dict) -> float | None:
    """Processor seconds per event of the daemon's process and its fetch process together (None if unmeasured)."""
    parts = (daemon.get("daemon_learner_cpu_seconds_per_event"), daemon.get("daemon_fetcher_cpu_seconds_per_event"))
    return None if None in parts else sum(parts)


def _daemon_ratios(daemon: dict) -> dict:
    """``cores_needed_for_target``: the cores the daemon's processor time per event would fill at the target
    share of the raw consume rate (compare with the machine's cores)."""
    raw_rate, cpu = daemon["raw_consume_events_per_second"], _daemon_cpu_per_event(daemon)
    return {"daemon_vs_raw_consume": _ratio(daemon["daemon_events_per_second"], raw_rate),
            "achieved_vs_offered_rate": _ratio(daemon["offered_events_per_second"], daemon["target_rate"]),
            "freshness_p99_vs_target": _ratio(daemon["freshness_p99_seconds"], TARGETS["freshness_p99_seconds"]),
            "cpu_per_event_vs_raw_consume": _ratio(cpu, daemon.get("raw_consume_cpu_seconds_per_event")),
            "cores_needed_for_target": None if cpu is None else cpu * TARGETS["daemon_vs_raw_consume"] * raw_rate,
            "learning_alone_vs_raw_consume": _ratio(daemon.get("learning_alone_events_per_second"), raw_rate)}


def _lookup_ratios(lookup: dict) -> dict:
    ping = lookup["operations"]["ping"]
    return {name: {"p50_vs_ping": _ratio(stats["p50_us"], ping["p50_us"]),
                   "p99_vs_ping": _ratio(stats["p99_us"], ping["p99_us"])}
            for name, stats in lookup["operations"].items() if name != "ping"}


def _scale_ratios(scale: dict) -> dict:
    """Per size: the checkpoint's share of the 1 s target, bytes per checkpoint vs the full base, the structure
    that takes the most memory."""
    ratios = {}
    for size in scale["sizes"]:
        checkpoint, memory = size["checkpoint"], dict(size["memory_bytes"])
        memory.pop("capacity_rows", None)
        ratios[str(size["items"])] = {
            "checkpoint_vs_target": _ratio(checkpoint.get("checkpoint_loop_seconds", checkpoint["checkpoint_seconds"]),
                                           TARGETS["checkpoint_seconds_at_10k_events"]),
            "checkpoint_vs_base_bytes": _ratio(checkpoint["checkpoint_bytes"], checkpoint["base_bytes"]),
            "largest_structure": max(memory, key=memory.get)}
    return ratios


def _neighbours_ratios(neighbours: dict) -> dict:
    memory = neighbours.get("memory") or {}
    return {"index_vs_exact": _ratio(neighbours["index_lists_per_second"], neighbours["exact_lists_per_second"]),
            "index_memory_vs_raw_vectors": _ratio(memory.get("index_bytes"), memory.get("raw_vector_bytes"))}


def _spare_ratios(spare: dict) -> dict:
    return {"replay_vs_target": _ratio(spare["replay_draws_per_second"], TARGETS["replay_draws_per_second"])}


def compute_ratios(sections: dict[str, dict]) -> dict[str, Any]:
    """Every ratio of the report, from the measured numbers of the sections present (None = not measurable)."""
    makers = {"training": _training_ratios, "memory": _memory_ratios, "daemon": _daemon_ratios,
              "lookup": _lookup_ratios, "scale": _scale_ratios, "neighbours": _neighbours_ratios,
              "spare_replay": _spare_ratios}
    return {name: makers[name](section) for name, section in sections.items()
            if name in makers and section and "error" not in section}


def describe_machine(machine: dict) -> str:
    """``2 cores (Intel ...), 7.8 GiB RAM, load average 1.20 / 0.90 (before / after), Linux ..., Python 3.11``."""
    load_before, load_after = machine.get("load_average_before"), machine.get("load_average_after")
    load = f"{load_before[0]:.2f}" if load_before else "?"
    if load_after:
        load += f" / {load_after[0]:.2f} (1-min, before / after)"
    memory = machine.get("memory_bytes")
    ram = f"{memory / 2 ** 30:.1f} GiB RAM" if memory else "RAM unknown"
    cpu = f" ({machine['cpu']})" if machine.get("cpu") else ""
    return (f"{machine.get('cores')} cores{cpu}, {ram}, load average {load}, {machine.get('platform', '?')}, "
            f"Python {machine.get('python', '?')}")


def _number(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


Row = tuple[str, str, str, str, str]  # measure, streamer, baseline, ratio, target


def _target(text: str, value: float | None, bound: float, at_least: bool) -> str:
    """The target with its verdict: ``"≥ 0.9: not met"`` (``"... : not measured"`` without a value)."""
    if value is None:
        return f"{text}: not measured"
    met = value >= bound if at_least else value <= bound
    return f"{text}: {'met' if met else 'not met'}"


def _training_rows(training: dict, ratios: dict) -> list[Row]:
    ours = {"1": training["streamer_tokens_per_second"], "2": training.get("streamer_2_workers_tokens_per_second")}
    return [(f"training tokens/s, streamer Trainer(workers={workers}) vs gensim Word2Vec(sg=1, workers={workers})",
             _number(ours[workers]), _number(training["gensim_tokens_per_second"].get(workers)),
             _number(ratios[key], 2, "x"), _target("≥ 1.0", ratios[key], 1.0, at_least=True))
            for workers, key in (("1", "streamer_vs_gensim_1_worker"), ("2", "streamer_vs_gensim_2_workers"))]


def _memory_rows(memory: dict, ratios: dict) -> list[Row]:
    raw = memory["raw_vector_bytes_per_item"] * memory["items"] / 2 ** 20
    return [(f"peak RSS with {memory['items']:,} items (dim {memory['vector_size']})",
             _number(memory["peak_rss_bytes"] / 2 ** 20, 0, " MiB"), _number(raw, 0, " MiB raw vectors"),
             _number(ratios["peak_rss_vs_raw_vectors"], 2, "x"), "-")]


def _daemon_rows(daemon: dict, ratios: dict) -> list[Row]:
    p50, p99 = daemon["freshness_p50_seconds"], daemon["freshness_p99_seconds"]
    return [("end-to-end events/s (Kafka → Redis) vs raw kafka-python consume",
             _number(daemon["daemon_events_per_second"]), _number(daemon["raw_consume_events_per_second"]),
             _number(ratios["daemon_vs_raw_consume"], 3),
             _target("≥ 0.9", ratios["daemon_vs_raw_consume"], TARGETS["daemon_vs_raw_consume"], at_least=True)),
            (f"freshness p50 / p99 at {daemon['offered_events_per_second']:,.0f} events/s offered",
             f"{_number(p50 and p50 * 1000)} / {_number(p99 and p99 * 1000)} ms", "-",
             _number(ratios["freshness_p99_vs_target"], 2, " of 1 s"),
             _target("p99 ≤ 1 s", p99, TARGETS["freshness_p99_seconds"], at_least=False))] + _cpu_rows(daemon, ratios)


def _cpu_rows(daemon: dict, ratios: dict) -> list[Row]:
    """Processor time per event, and the cores it would fill at the throughput target; a process whose time was
    not measured (no ``/proc``, ``--fetcher inline``, or too little time for ``/proc``'s clock ticks) says so."""
    learner, fetcher = daemon.get("daemon_learner_cpu_seconds_per_event"), daemon.get("daemon_fetcher_cpu_seconds_per_event")
    if learner is None:
        return _alone_rows(daemon, ratios)
    raw = daemon.get("raw_consume_cpu_seconds_per_event")
    fetched = "not measured" if fetcher is None else _number(fetcher * 1e6, 2)
    return [("processor µs per event: daemon (learning + fetch process) vs raw kafka-python consume",
             f"{_number(learner * 1e6, 2)} + {fetched}", _number(raw and raw * 1e6, 2),
             _number(ratios["cpu_per_event_vs_raw_consume"], 2, "x"), "-"),
            ("cores the daemon needs at 0.9 of the raw rate (vs cores on this machine)",
             _number(ratios["cores_needed_for_target"], 2), _number(daemon.get("cores")), "-", "-")] + _alone_rows(daemon, ratios)


def _alone_rows(daemon: dict, ratios: dict) -> list[Row]:
    """The daemon's engine learning the same events without Kafka or Redis (when measured)."""
    if ratios.get("learning_alone_vs_raw_consume") is None:
        return []
    return [("learning alone events/s (the daemon's engine, no Kafka, no Redis) vs raw kafka-python consume",
             _number(daemon["learning_alone_events_per_second"]), _number(daemon["raw_consume_events_per_second"]),
             _number(ratios["learning_alone_vs_raw_consume"], 3), "-")]


def _lookup_rows(lookup: dict, ratios: dict) -> list[Row]:
    ping = lookup["operations"]["ping"]
    return [(f"lookup `{name}` p50 / p99 vs redis-py PING", f"{stats['p50_us']:.0f} / {stats['p99_us']:.0f} µs",
             f"{ping['p50_us']:.0f} / {ping['p99_us']:.0f} µs",
             f"{ratios[name]['p50_vs_ping']:.2f} / {ratios[name]['p99_vs_ping']:.2f}x",
             _target("p99 ≤ 300 µs", stats["p99_us"], TARGETS["lookup_p99_microseconds"], at_least=False)
             if name in ("vector", "similar") else "-")
            for name, stats in lookup["operations"].items() if name != "ping"]


def _scale_rows(scale: dict, ratios: dict) -> list[Row]:
    rows: list[Row] = []
    for size in scale["sizes"]:
        items, checkpoint, mine = f"{size['items']:,} items", size["checkpoint"], ratios[str(size["items"])]
        memory = size["memory_bytes"]
        rows += [
            (f"{items}: learning events/s (steady / one event in five a new item)",
             _number(size["learning_events_per_second"]), _number(size["growing_events_per_second"]),
             _number(size["growing_slowdown"], 3, " slower"),
             _target("< 0.1 slower", size["growing_slowdown"], TARGETS["growing_slowdown"], at_least=False)),
            (f"{items}: checkpoint at 10,000 events/s (300,000 events): seconds of the loop (until durable) / bytes",
             f"{_number(checkpoint.get('checkpoint_loop_seconds', checkpoint['checkpoint_seconds']), 2, ' s')} "
             f"({_number(checkpoint['checkpoint_seconds'], 2, ' s')})",
             _number(checkpoint["checkpoint_bytes"] / 2 ** 20, 0, " MiB"),
             _number(mine["checkpoint_vs_base_bytes"], 3, " of the base"),
             _target("< 1 s", checkpoint.get("checkpoint_loop_seconds", checkpoint["checkpoint_seconds"]),
                     TARGETS["checkpoint_seconds_at_10k_events"], at_least=False)),
            (f"{items}: full base snapshot (bytes / seconds), restore seconds (files)",
             f"{checkpoint['base_bytes'] / 2 ** 20:,.0f} MiB / {checkpoint['base_seconds']:.1f} s",
             f"{size['restore_seconds']:.1f} s ({size['restore_chain_files']})", "-", "-"),
            (f"{items}: RSS / peak RSS; largest structure",
             f"{size['rss_bytes'] / 2 ** 20:,.0f} / {size['peak_rss_bytes'] / 2 ** 20:,.0f} MiB",
             f"{mine['largest_structure']} {memory[mine['largest_structure']] / 2 ** 20:,.0f} MiB", "-", "-"),
            (f"{items}: catalog upsert into a category of {size['category_members']:,}",
             _number(size["upsert_microseconds"], 0, " µs"), "-", "-", "-")]
    return rows


def _neighbours_rows(neighbours: dict, ratios: dict) -> list[Row]:
    items = f"{neighbours['items']:,} items"
    rows = [(f"neighbour lists/s, k = 20, one core, {items}: index vs exact", _number(neighbours["index_lists_per_second"]),
             _number(neighbours["exact_lists_per_second"], 1), _number(ratios["index_vs_exact"], 0, "x"), "≥ 5,000/s"),
            (f"recall@10 of the index vs exact ({neighbours['recall_queries']} items)",
             _number(neighbours["recall_at_10"], 3), "1", "-", "≥ 0.95")]
    memory, freshness = neighbours.get("memory"), neighbours.get("freshness")
    if memory:
        rows.append(("neighbour index memory vs raw vectors (in + out, float32)",
                     _number(memory["index_bytes"] / 2 ** 20, 0, " MiB"),
                     _number(memory["raw_vector_bytes"] / 2 ** 20, 0, " MiB"),
                     _number(ratios["index_memory_vs_raw_vectors"], 3), "-"))
    if freshness:
        rows.append((f"changed item's list age p50 / p99 at {freshness['events_per_second']:,.0f} events/s",
                     f"{freshness['age_p50_seconds']:.2f} / {freshness['age_p99_seconds']:.2f} s", "-", "-", "-"))
    return rows


def _spare_rows(spare: dict, ratios: dict) -> list[Row]:
    return [(f"spare-time replay after a {spare['events']:,}-event burst (draws/s)",
             _number(spare["replay_draws_per_second"]), "-", _number(ratios["replay_vs_target"], 3), "≥ 100,000/s"),
            ("Redis item writes per learned event (burst) / per replayed draw (spare time)",
             f"{spare['item_writes_per_learned_event']:.2f} / {spare['item_writes_per_replayed_draw']:.3f}", "-", "-",
             "-")]


ROW_MAKERS = {"training": _training_rows, "memory": _memory_rows, "daemon": _daemon_rows, "lookup": _lookup_rows,
              "scale": _scale_rows, "neighbours": _neighbours_rows, "spare_replay": _spare_rows}


def _rows(document: dict) -> list[Row]:
    """The rows of every section that was measured, in section order."""
    rows: list[Row] = []
    for name, section in document["sections"].items():
        if name in ROW_MAKERS and "error" not in section:
            rows += ROW_MAKERS[name](section, document["ratios"][name])
    return rows


def markdown_report(document: dict) -> str:
    """The table README embeds: the machine, one row per measure, the errors of sections that failed."""
    lines = [f"Measured by `{document.get('command', 'streamer bench')}` on {document.get('finished', '?')}.",
             "", f"Machine: {describe_machine(document['machine'])}.", "",
             "| measure | streamer | baseline | ratio | target |", "|---|---:|---:|---:|---|"]
    lines += [f"| {' | '.join(row)} |" for row in _rows(document)]
    failed = {name: section["error"] for name, section in document["sections"].items() if "error" in section}
    if failed:
        lines += [""] + [f"- {name}: not measured ({error})" for name, error in failed.items()]
    return "\n".join(lines) + "\n"


def text_report(document: dict) -> str:
    """The same rows as aligned text for the terminal."""
    rows = [("measure", "streamer", "baseline", "ratio", "target")] + _rows(document)
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    text = [f"machine: {describe_machine(document['machine'])}"]
    text += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    text += [f"{name}: not measured ({section['error']})" for name, section in document["sections"].items()
             if "error" in section]
    return "\n".join(text)
