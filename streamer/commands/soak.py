"""``streamer soak``: the daemon under seeded random faults for a bounded time, then an audit (see
:mod:`streamer.soak`). Exit code 0 when every produced event was learned exactly once and every item is
in Redis, 1 otherwise."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

HELP = "run the daemon under random faults (kill -9, SIGTERM, Redis and broker restarts, bad messages), then audit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from streamer.soak import FAULTS, SoakPlan

    defaults = SoakPlan()
    parser.add_argument("--seconds", type=float, default=defaults.seconds,
                        help="start faults for this long (the audit follows)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the fault order and the events")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated fault kinds: " + ", ".join(FAULTS))
    parser.add_argument("--events-per-round", type=int, default=defaults.events_per_round)
    parser.add_argument("--no-oversized", action="store_true", help="no oversized bad messages")
    parser.add_argument("--workdir", default=None, help="keep state and logs here (default: a temporary folder)")


def run(args: argparse.Namespace) -> int:
    from streamer.errors import ConfigError
    from streamer.soak import FAULTS, SoakPlan, run_soak

    faults = tuple(kind.strip() for kind in args.faults.split(",") if kind.strip())
    unknown = set(faults) - set(FAULTS)
    if unknown or not faults:
        raise ConfigError(f"--faults: unknown kinds {', '.join(sorted(unknown)) or '(none given)'}")
    plan = SoakPlan(seconds=args.seconds, seed=args.seed, faults=faults, events_per_round=args.events_per_round,
                    oversized=not args.no_oversized)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="streamer-soak-"))
    try:
        result = run_soak(plan, workdir, say=lambda text: print(text, flush=True))
        print(result.report())
        if not result.ok:
            print(f"logs kept in {workdir}")
        return 0 if result.ok else 1
    finally:
        if not args.workdir and "result" in locals() and result.ok:
            shutil.rmtree(workdir, ignore_errors=True)
