"""Measuring part of ``streamer bench``: runs the benchmarks under ``ops/`` in one process tree.

The reusable functions live in the ``ops/bench_*.py`` scripts of a source checkout (``ops/`` is not an
installed package), so they are loaded by path. Each section returns plain numbers; a section that fails
is recorded as ``{"error": ...}`` and the others still run. Each section runs in a child process with a
timeout (``python -m streamer.benchmarks.suite SECTION [--quick]``), so a hung benchmark cannot hang the suite. Sizes: :data:`FULL` and :data:`QUICK`.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamer.errors import StreamerError

__all__ = ["FULL", "OPS_DIRECTORY", "QUICK", "BenchError", "machine_facts", "load_ops", "run_suite"]

OPS_DIRECTORY = Path(__file__).resolve().parents[2] / "ops"
FULL = {"tokens": 1_000_000, "items": 50_000, "memory_items": 1_000_000, "daemon_events": 200_000,
        "rate": 10_000.0, "rate_seconds": 20.0, "lookup_items": 10_000, "lookup_calls": 20_000,
        "lookup_rounds": 10, "lookup_warmup": 2_000, "scale_sizes": (1_000_000, 10_000_000), "scale_events": 2_000_000,
        "neighbour_items": 1_000_000, "neighbour_queries": 2_000, "burst_events": 300_000, "spare_seconds": 30.0}
QUICK = {"tokens": 100_000, "items": 10_000, "memory_items": 100_000, "daemon_events": 20_000,
         "rate": 10_000.0, "rate_seconds": 3.0, "lookup_items": 2_000, "lookup_calls": 2_000,
         "lookup_rounds": 4, "lookup_warmup": 200, "scale_sizes": (100_000,), "scale_events": 200_000,
         "neighbour_items": 50_000, "neighbour_queries": 500, "burst_events": 30_000, "spare_seconds": 10.0}
VECTOR_SIZE = 64


class BenchError(StreamerError):
    """A benchmark script is missing or failed."""


def load_ops(name: str, directory: Path = OPS_DIRECTORY):
    """The module ``ops/<name>.py`` of the source checkout, imported under its own name with ``ops/`` on
    ``sys.path`` (so processes it spawns can import it too)."""
    if not (directory / f"{name}.py").is_file():
        raise BenchError(f"{directory / name}.py not found: streamer bench runs from a source checkout "
                         "(ops/ is not installed)")
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    return importlib.import_module(name)


def machine_facts() -> dict:
    """Cores, CPU model, RAM, load average, platform, Python."""
    cpu, memory = None, None
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), None)
        memory = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_bytes": memory, "load_average_before": os.getloadavg(),
            "platform": platform.platform(), "python": platform.python_version()}


def measure_training(sizes: dict) -> dict:
    """``Trainer.learn`` tokens/s with 1 and 2 workers vs gensim ``Word2Vec(sg=1)`` with 1 and 2 workers, same corpus."""
    training = load_ops("bench_training")
    sessions, events = training.corpus(sizes["tokens"], sizes["items"])
    ours = len(events) / training.time_trainer(events)
    gensim = {str(workers): len(events) / training.time_gensim(sessions, workers) for workers in (1, 2)}
    ours_two = len(events) / training.time_trainer(events, workers=2)
    return {"tokens": len(events), "sessions": len(sessions), "item_ids": sizes["items"],
            "hyper": dict(training.HYPER, subsample=1e-3, epochs=1), "streamer_tokens_per_second": ours,
            "streamer_2_workers_tokens_per_second": ours_two,
            "gensim_tokens_per_second": gensim}


def measure_memory(sizes: dict) -> dict:
    """Peak RSS of a child process whose Trainer holds ``memory_items`` items (``bench_training --memory-child``)."""
    script = OPS_DIRECTORY / "bench_training.py"
    load_ops("bench_training")  # same check and message when ops/ is missing
    output = subprocess.run([sys.executable, str(script), "--memory-child", str(sizes["memory_items"])],
                            check=True, capture_output=True, text=True).stdout.split()
    items, peak_kib = int(output[-2]), int(output[-1])
    return {"items": items, "vector_size": VECTOR_SIZE, "peak_rss_bytes": peak_kib * 1024,
            "raw_vector_bytes_per_item": 2 * VECTOR_SIZE * 4}  # input + output float32 rows


def measure_daemon(sizes: dict) -> dict:
    """Raw kafka-python consume vs the daemon end to end on one pre-filled topic, their processor time per
    event, the engine learning alone; freshness at a fixed rate (``ops/bench_daemon.py``'s ``measure``)."""
    daemon = load_ops("bench_daemon")
    state = Path(tempfile.mkdtemp(prefix="streamer-bench-daemon-"))
    try:
        return daemon.measure(sizes["daemon_events"], sizes["rate"], sizes["rate_seconds"], state,
                              log_dir=state / "stack")
    finally:
        shutil.rmtree(state, ignore_errors=True)


def measure_lookup(sizes: dict) -> dict:
    """p50/p99 of ``vector``, ``vectors(100)``, ``similar`` and a raw ``PING`` over loopback, interleaved."""
    import redis

    from streamer.keys import Keys
    from streamer.localstack import LocalStack
    from streamer.lookup import Lookup

    bench = load_ops("bench_lookup")
    stack = LocalStack()
    stack.start_redis()
    try:
        with redis.Redis.from_url(stack.redis_url) as floor, Lookup(stack.redis_url, namespace="bench") as lookup:
            ids = bench.fill(floor, Keys("bench"), sizes["lookup_items"], VECTOR_SIZE, 10, 1)
            operations = bench.build_operations(lookup, floor, ids, 100, 1)
            results = bench.measure(operations, sizes["lookup_calls"], sizes["lookup_rounds"], sizes["lookup_warmup"])
        server = bench.machine()
    finally:
        stack.stop()
    return {"items": sizes["lookup_items"], "vector_size": VECTOR_SIZE, "neighbours": 10,
            "calls_per_operation": sizes["lookup_calls"], "operations": results,
            "reply_parser": server["reply_parser"], "redis_server": server["redis_server"].split(" sha=")[0]}


def measure_scale(sizes: dict) -> dict:
    """A catalog growing to each of ``scale_sizes`` items (``ops/bench_scale.py``, one child process per size):
    learning events/s, RSS and its parts, checkpoint bytes and seconds at 10,000 events/s, restore, upserts."""
    bench = load_ops("bench_scale")
    return {"vector_size": VECTOR_SIZE, "sizes": [bench.run_child(size, sizes["scale_events"])
                                                  for size in sizes["scale_sizes"]]}


def measure_neighbours(sizes: dict) -> dict:
    """Lists/s from the neighbour index vs exact, recall@10, index memory, list age under load
    (``ops/bench_neighbours.py``)."""
    bench = load_ops("bench_neighbours")
    return bench.measure(sizes["neighbour_items"], sizes["neighbour_queries"], 200, sizes["rate"],
                         sizes["rate_seconds"])


def measure_spare_replay(sizes: dict) -> dict:
    """Spare-time replay rate after a burst and Redis item writes per event (``ops/bench_spare_replay.py``)."""
    bench = load_ops("bench_spare_replay")
    state = Path(tempfile.mkdtemp(prefix="streamer-bench-spare-"))
    try:
        result = bench.run(sizes["burst_events"], sizes["burst_events"], sizes["spare_seconds"], False, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    result.pop("profile", None)
    return result


MEASURES = {"training": measure_training, "memory": measure_memory, "daemon": measure_daemon,
            "lookup": measure_lookup, "neighbours": measure_neighbours, "spare_replay": measure_spare_replay,
            "scale": measure_scale}
TIMEOUT_SECONDS = {False: 900.0, True: 180.0}
SECTION_TIMEOUT_SECONDS = {"scale": {False: 5400.0, True: 600.0}}  # 10M items: minutes of growing and writing
RESULT_MARK = "BENCH-RESULT "


def run_section(name: str, quick: bool, timeout: float | None = None) -> dict:
    """One section in a child process of its own session (``python -m streamer.benchmarks.suite NAME``), so a
    hung benchmark is stopped after ``timeout`` together with any broker or redis-server it started."""
    command = [sys.executable, "-m", "streamer.benchmarks.suite", name] + (["--quick"] if quick else [])
    timeout = timeout or SECTION_TIMEOUT_SECONDS.get(name, TIMEOUT_SECONDS)[quick]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        out, err = child.communicate(timeout=timeout or TIMEOUT_SECONDS[quick])
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return {"error": f"timed out after {timeout or TIMEOUT_SECONDS[quick]:.0f} s"}
    finally:
        _stop_group(child.pid)
    marked = [line[len(RESULT_MARK):] for line in out.splitlines() if line.startswith(RESULT_MARK)]
    if child.returncode != 0 or not marked:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit code {child.returncode}: {tail}"}
    return json.loads(marked[-1])


def _stop_group(group: int) -> None:
    """Kill whatever the section's child left behind in its session (servers it did not stop)."""
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_suite(quick: bool = False, sections=tuple(MEASURES), progress=print) -> dict:
    """Measure every section in turn, each in its own child process; a failing one becomes ``{"error": ...}``."""
    sizes = QUICK if quick else FULL
    document = {"machine": machine_facts(), "settings": dict(sizes, quick=quick), "sections": {}}
    for name in sections:
        began = time.perf_counter()
        progress(f"bench: {name} ...")
        section = run_section(name, quick)
        section["seconds"] = round(time.perf_counter() - began, 1)
        document["sections"][name] = section
        progress(f"bench: {name} " + (f"failed: {section['error']}" if "error" in section else "done")
                 + f" in {section['seconds']} s")
    document["machine"]["load_average_after"] = os.getloadavg()
    document["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return document


def main(argv: list[str] | None = None) -> int:
    """Child entry point: measure one section and print it as one marked JSON line."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    name, quick = arguments[0], "--quick" in arguments[1:]
    if name not in MEASURES:
        raise BenchError(f"unknown section {name!r}; known: {', '.join(MEASURES)}")
    result = MEASURES[name](QUICK if quick else FULL)
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
