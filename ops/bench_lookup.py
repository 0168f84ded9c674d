"""Lookup latency over loopback: ``vector``, ``vectors(100)`` and ``similar`` next to a raw ``PING``.

    python ops/bench_lookup.py                      # 10k items, dim 64, 10 neighbours, 20k calls per op
    python ops/bench_lookup.py --json lookup.json   # also write the numbers as JSON

Starts its own redis-server (LocalStack) on a free loopback port, fills it in the published layout, warms
up, then times every call with ``perf_counter_ns``. The operations are measured in interleaved rounds so a
noisy neighbour on the machine hits all of them alike; PING through redis-py is the floor, and every
operation is also given as a ratio to it. The goal is p99 of ``vector`` and ``similar`` <= 0.3 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import redis

from streamer.keys import Keys, encode_vector
from streamer.localstack import LocalStack, find_redis_server
from streamer.lookup import Lookup

GOAL_P99_MICROSECONDS = 300.0


def fill(client: redis.Redis, keys: Keys, items: int, vector_size: int, neighbours: int, seed: int) -> list[str]:
    """Publish ``items`` random unit vectors with ``neighbours`` scored neighbours each, as the daemon would."""
    generator = np.random.default_rng(seed)
    ids = [f"item-{number}" for number in range(items)]
    vectors = generator.normal(size=(items, vector_size)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    client.hset(keys.meta, mapping={"vector_size": vector_size, "dtype": "float32", "normalised": 1,
                                    "model_version": 1, "item_count": items, "last_flush": time.time()})
    pipeline = client.pipeline(transaction=False)
    for position, item in enumerate(ids):
        pipeline.hset(keys.item(item), mapping={"vec": encode_vector(vectors[position]), "version": 1,
                                                "updated_at": time.time()})
        chosen = generator.choice(items, size=neighbours, replace=False)
        pipeline.zadd(keys.neighbours(item), {ids[other]: float(vectors[position] @ vectors[other])
                                              for other in chosen})
        if position % 1000 == 999:
            pipeline.execute()
    pipeline.execute()
    return ids


def summarise(samples_ns: list[int]) -> dict[str, float]:
    micros = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return {"p50_us": float(np.percentile(micros, 50)), "p99_us": float(np.percentile(micros, 99)),
            "mean_us": float(micros.mean()), "calls": int(micros.size)}


def measure(operations: dict, calls: int, rounds: int, warmup: int) -> dict[str, dict[str, float]]:
    """Time each operation ``calls`` times in total, interleaved over ``rounds`` rounds, after a warm-up."""
    for operation in operations.values():
        for _ in range(warmup):
            operation()
    samples: dict[str, list[int]] = {name: [] for name in operations}
    clock = time.perf_counter_ns
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for name, operation in operations.items():
            timings = samples[name]
            for _ in range(per_round):
                began = clock()
                operation()
                timings.append(clock() - began)
    return {name: summarise(timings) for name, timings in samples.items()}


def machine() -> dict:
    version = subprocess.run([find_redis_server(), "--version"], capture_output=True, text=True).stdout.strip()
    from redis.utils import HIREDIS_AVAILABLE

    return {"cores": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version(),
            "redis_py": redis.__version__, "reply_parser": "hiredis" if HIREDIS_AVAILABLE else "pure Python",
            "redis_server": version, "platform": platform.platform()}


def build_operations(lookup: Lookup, floor: redis.Redis, ids: list[str], batch: int, seed: int) -> dict:
    generator = np.random.default_rng(seed)
    picks = [ids[index] for index in generator.integers(0, len(ids), size=1 << 16)]
    batches = [[ids[index] for index in generator.integers(0, len(ids), size=batch)] for _ in range(64)]
    counter = iter(range(1 << 62))

    def pick() -> str:
        return picks[next(counter) & 0xFFFF]

    return {
        "ping": floor.ping,
        "vector": lambda: lookup.vector(pick()),
        f"vectors({batch})": lambda: lookup.vectors(batches[next(counter) & 63]),
        "similar": lambda: lookup.similar(pick(), 10),
    }


def report(results: dict) -> str:
    floor = results["ping"]
    lines = [f"{'operation':<14}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}{'p50/PING':>10}{'p99/PING':>10}"]
    for name, stats in results.items():
        lines.append(f"{name:<14}{stats['p50_us']:>10.1f}{stats['p99_us']:>10.1f}{stats['mean_us']:>10.1f}"
                     f"{stats['p50_us'] / floor['p50_us']:>10.2f}{stats['p99_us'] / floor['p99_us']:>10.2f}")
    met = all(results[name]["p99_us"] <= GOAL_P99_MICROSECONDS for name in ("vector", "similar"))
    lines.append(f"goal p99 of vector and similar <= {GOAL_P99_MICROSECONDS:.0f} us: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--vector-size", type=int, default=64)
    parser.add_argument("--neighbours", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100, help="items per vectors() call")
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per operation")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the calls are split into")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    stack = LocalStack()
    stack.start_redis()
    try:
        keys = Keys("bench")
        with redis.Redis.from_url(stack.redis_url) as floor, Lookup(stack.redis_url, namespace="bench") as lookup:
            ids = fill(floor, keys, args.items, args.vector_size, args.neighbours, args.seed)
            operations = build_operations(lookup, floor, ids, args.batch, args.seed)
            results = measure(operations, args.calls, args.rounds, args.warmup)
        described = machine()
    finally:
        stack.stop()
    print(f"lookup latency over loopback: {args.items} items x dim {args.vector_size}, {args.neighbours} neighbours,"
          f" {args.calls} calls per operation in {args.rounds} interleaved rounds")
    print(f"machine: {described['cores']} cores, load average {described['load_average'][0]:.2f}, "
          f"python {described['python']}, redis-py {described['redis_py']} ({described['reply_parser']} reply parser), "
          f"{described['redis_server'].split(' sha=')[0]}")
    print(report(results))
    if args.json:
        payload = {"benchmark": "lookup", "settings": vars(args) | {"json": str(args.json)},
                   "machine": described, "results": results, "goal_p99_us": GOAL_P99_MICROSECONDS,
                   "ratios_to_ping": {name: {"p50": stats["p50_us"] / results["ping"]["p50_us"],
                                             "p99": stats["p99_us"] / results["ping"]["p99_us"]}
                                      for name, stats in results.items()}}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
