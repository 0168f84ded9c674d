"""The ``streamer`` command: one subcommand per module under :mod:`streamer.commands`.

Each command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs (or for ``--help``), so a missing optional
dependency of one command never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

# One BLAS thread unless told otherwise (before numpy is imported by any command): the daemon's loop owns one
# core beside its fetch process, and a multi-threaded BLAS spinning on the loop's small matrix products against
# them made neighbour lists 4.5x slower on a loaded 2-core machine (docs/neighbours.md).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# numba's OpenMP threads (spare-time replay on every core, workers > 1) sleep between parallel sections instead of
# spinning: spinning threads took the core the loop's next chunk needed (replay chunks of 1,000 draws on two threads
# ran 3x slower than on one, 78.7 vs 23.6 us a draw, on the loaded 2-core machine; docs/performance.md).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from streamer import __version__
from streamer.errors import StreamerError

__all__ = ["main"]

COMMANDS = {
    "demo": "streamer.commands.demo",
    "replay": "streamer.commands.replay",
    "run": "streamer.commands.run",
    "lookup": "streamer.commands.lookup",
    "export": "streamer.commands.export",
    "eval": "streamer.commands.evaluate",
    "bench": "streamer.commands.bench",
    "soak": "streamer.commands.soak",
}


def _build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Streaming Item2vec: Kafka interaction events in, fresh item vectors in Redis out.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    requested = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if requested == name:
                raise StreamerError(f"command {name!r} is unavailable: {error}") from error
            continue
        subparser = subparsers.add_parser(
            name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(subparser)
        subparser.set_defaults(handler=module.run)
    return parser


def _keep_early_stop_signals() -> None:
    """Until the daemon installs its own handlers, SIGTERM/SIGINT are recorded (commands.run.EARLY_SIGNALS)."""
    from streamer.commands import run

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda signum, _frame: run.EARLY_SIGNALS.append(signum))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"] and threading.current_thread() is threading.main_thread():
        _keep_early_stop_signals()
    try:
        parser = _build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        return int(args.handler(args) or 0)
    except StreamerError as error:
        print(f"streamer: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
