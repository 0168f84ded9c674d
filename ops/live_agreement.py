"""How close the daemon's live hit rates come to ``streamer eval`` on the same events (docs/live-quality.md).

    python ops/live_agreement.py yoochoose [--slices 10] [--rate 2000] [--seed 1] [--json FILE]

One local stack (Tansu + redis-server), the data set's events split by the protocol (warm-up, S slices):

1. ``eval``: the in-process protocol for ``streamer`` (``most_similar``) and ``cooc`` at S and at 10·S.
2. ``in step``: a daemon with ``live_sample_rate 1.0`` (and shadow bounds no set reaches) learns the warm-up,
   then each slice after the slice was scored through its published lists (``streamer@kafka``), exactly as
   ``streamer eval --via-kafka`` does. Its live counters are read after the warm-up and at the end: the
   difference covers the same pairs as the eval (the pair counts are printed and must be equal).
3. ``free running`` (with ``--rate``): a second daemon, the default publishing cadence, learns the warm-up,
   then gets the rest at ``--rate`` events/s in one stream, as in production; its live figures over the
   same pairs show what a lag of the published lists costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.config import load_settings  # noqa: E402
from streamer.datasets import load_events  # noqa: E402
from streamer.evaluation.baselines import CooccurrenceModel  # noqa: E402
from streamer.evaluation.kafka_models import ServedNeighboursModel, ServedPath, evaluate_in_step  # noqa: E402
from streamer.evaluation.protocol import evaluate, split_events  # noqa: E402
from streamer.evaluation.streamer_models import StreamerModel  # noqa: E402
from streamer.localstack import LocalStack  # noqa: E402
from streamer.replay import produce_events  # noqa: E402

AMPLE = {"live_sample_rate": 1.0, "live_window": 10_000_000, "live_shadow_items": 10_000_000,
         "live_shadow_pairs": 10_000_000, "live_sessions": 10_000_000}
CADENCE = ("flush_interval", "neighbours_interval", "neighbours_batch")  # the free-running daemon keeps the defaults


def live_counters(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    rows = (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("streamer_live_"))
    return {name: float(value) for name, value in rows}


def live_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Samples and HR@10 per model between two scrapes."""
    samples = after["streamer_live_samples_total"] - before.get("streamer_live_samples_total", 0.0)
    figures = {"pairs": samples}
    for model in ("streamer", "cooc"):
        name = f'streamer_live_hits_total{{model="{model}"}}'
        figures[model] = (after[name] - before.get(name, 0.0)) / samples if samples else float("nan")
    return figures


def in_process(split, slices: int, seed: int) -> dict[str, dict[str, float]]:
    results = {}
    for label, chunks in ((f"S={slices}", split), (f"S={10 * slices}", None)):
        chunked = chunks or split_events(split.warmup + [event for part in split.slices for event in part],
                                         slices=10 * slices)
        for model in (StreamerModel(seed=seed), CooccurrenceModel()):
            result = evaluate(model, chunked, k=10)
            results[f"{model.name} {label}"] = {"pairs": result.pairs, "hr10": result.hit_rate}
    return results


def in_step(stack: LocalStack, split, seed: int, workdir: Path) -> dict[str, object]:
    workdir.mkdir(parents=True)
    path = ServedPath(seed=seed, bootstrap_servers=stack.bootstrap_servers, redis_url=stack.redis_url,
                      engine_knobs=AMPLE, timeout=900, workdir=workdir)
    port = path.metrics_port  # the harness gives its daemon a metrics port (it reads the gauges too)
    with path:
        served = ServedNeighboursModel(path)
        marks = {}

        def learn(events):
            path.learn(events)
            marks.setdefault("warmup", live_counters(port))

        result = evaluate_in_step([served], split, k=10, learn=learn)[0]
        live = live_figures(marks["warmup"], live_counters(port))
    return {"streamer@kafka": {"pairs": result.pairs, "hr10": result.hit_rate}, "live": live}


def free_running(stack: LocalStack, split, seed: int, rate: float, workdir: Path) -> dict[str, object]:
    workdir.mkdir(parents=True)
    defaults = load_settings(environ={})
    cadence = {name: getattr(defaults, name) for name in CADENCE}
    path = ServedPath(seed=seed, bootstrap_servers=stack.bootstrap_servers, redis_url=stack.redis_url,
                      engine_knobs={**AMPLE, **cadence}, timeout=900, workdir=workdir)
    port = path.metrics_port
    with path:
        path.learn(split.warmup)
        wait_for_every_list(path, defaults.neighbours_interval)
        before = live_counters(port)
        rest = [event for part in split.slices for event in part]
        began = time.monotonic()
        path.produced += produce_events(path.bootstrap_servers, path.topic, rest, rate=rate).messages
        path.learn([])  # wait for the commit
        live = live_figures(before, live_counters(port))
        live["seconds"] = round(time.monotonic() - began, 1)
    return {"cadence": cadence, "live": live}


def wait_for_every_list(path: ServedPath, interval: float, timeout: float = 600.0) -> None:
    """Until the number of published lists has not moved for two refresh intervals (the warm-up is published)."""
    pattern = f"{path.namespace}:nn:*"
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 2 * interval + 1:
        count = sum(1 for _ in path._redis.scan_iter(match=pattern, count=10_000))
        if count != last:
            last, since = count, time.monotonic()
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.0, help="also the free-running replay at this many events/s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    split = split_events(load_events(args.dataset), slices=args.slices)
    report: dict[str, object] = {"dataset": args.dataset, "slices": args.slices, "seed": args.seed,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    report["eval"] = in_process(split, args.slices, args.seed)
    print(json.dumps(report["eval"], indent=1), flush=True)
    with tempfile.TemporaryDirectory(prefix="live-agreement-") as temporary, \
            LocalStack(log_dir=Path(temporary) / "stack") as stack:
        report["in_step"] = in_step(stack, split, args.seed, Path(temporary) / "in-step")
        print(json.dumps(report["in_step"], indent=1), flush=True)
        if args.rate:
            running = free_running(stack, split, args.seed, args.rate, Path(temporary) / "free-running")
            report["free_running"] = {"rate": args.rate, **running}
            print(json.dumps(report["free_running"], indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
