"""``streamer replay``: produce a shared data set or a CSV file to Kafka as JSON events keyed by user."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streamer.datasets import DATASETS, DatasetError, load_events
from streamer.errors import ConfigError
from streamer.replay import ReplayStats, format_progress, produce_events

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "produce a data set or CSV file to a Kafka topic as JSON events keyed by user, in timestamp order"
DESCRIPTION = (
    "Replay interactions to Kafka. Each message: key = user, value = "
    '{"user": "...", "item": "...", "ts": <unix seconds float>}, sent in timestamp order (stable). '
    f"DATASET is one of {', '.join(DATASETS)} (under $STREAMER_DATA_ROOT, default ../shared/data) or its "
    "folder; anything else is read as a CSV file with --columns. "
    "Defaults come from STREAMER_BOOTSTRAP_SERVERS and STREAMER_TOPIC."
)


def _environment(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _producer_option(text: str) -> tuple[str, object]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for convert in (int, float):
        try:
            return key.strip(), convert(value)
        except ValueError:
            continue
    return key.strip(), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="DATASET|CSV", help="data set name or folder, or a CSV file")
    parser.add_argument("--topic", default=_environment("STREAMER_TOPIC", "events"), help="Kafka topic")
    parser.add_argument("--bootstrap-servers", default=_environment("STREAMER_BOOTSTRAP_SERVERS", "localhost:9092"),
                        help="Kafka bootstrap servers, comma-separated")
    parser.add_argument("--columns", default=None,
                        help="CSV: user,item,ts column names (with a header) or 0-based indexes (without); "
                             "default user,item,ts, or 0,1,2 with --no-header")
    parser.add_argument("--delimiter", default=",", help="CSV field delimiter ('\\t' or 'tab' for tabs)")
    parser.add_argument("--no-header", action="store_true", help="CSV has no header row")
    parser.add_argument("--data-root", type=Path, default=None, help="folder of the shared data sets")
    parser.add_argument("--rate", type=float, default=0.0, help="at most this many events/s (0 = as fast as possible)")
    parser.add_argument("--speedup", type=float, default=0.0,
                        help="replay event time N times faster (0 = ignore event time); with --rate the stricter wins")
    parser.add_argument("--limit", type=int, default=None, help="send only the first N events in time order")
    parser.add_argument("--partitions", type=int, default=None, help="create the topic with N partitions if missing")
    parser.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to wait for the broker")
    parser.add_argument("--producer-option", type=_producer_option, action="append", default=[], metavar="KEY=VALUE",
                        help="extra kafka-python producer setting, e.g. security_protocol=SASL_SSL (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _validate(args: argparse.Namespace) -> None:
    for name in ("rate", "speedup", "limit", "partitions"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ConfigError(f"--{name} must be >= 0, got {value}")
    if args.partitions == 0:
        raise ConfigError("--partitions must be >= 1")


def load_rows(args: argparse.Namespace) -> list[tuple[str, str, float]]:
    """The rows the command will send, sorted by ts (stable), ``--limit`` applied."""
    source = args.source
    is_dataset = source in DATASETS or any(Path(source).name == folder for folder, _ in DATASETS.values())
    if is_dataset and args.columns is None:
        return load_events(source, limit=args.limit, data_root=args.data_root)
    if not Path(source).is_file():
        raise DatasetError(f"{source!r} is neither a known data set ({', '.join(DATASETS)}) nor a CSV file")
    default_columns = "0,1,2" if args.no_header else "user,item,ts"
    columns = [column.strip() for column in (args.columns or default_columns).split(",")]
    if len(columns) != 3:
        raise ConfigError(f"--columns needs exactly three names (user,item,ts), got {args.columns!r}")
    delimiter = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter
    return load_events(source, columns=columns, delimiter=delimiter, header=not args.no_header, limit=args.limit)


def _summary(stats: ReplayStats, topic: str) -> str:
    return (f"replayed {stats.messages:,} messages to {topic!r} in {stats.seconds:.2f} s "
            f"({stats.messages_per_second:,.0f} messages/s)")


def run(args: argparse.Namespace) -> int:
    _validate(args)
    rows = load_rows(args)
    if not args.quiet:
        print(f"replay: {len(rows):,} events from {args.source} to {args.topic!r} at {args.bootstrap_servers}",
              file=sys.stderr, flush=True)

    def report(progress) -> None:
        print(format_progress(progress), file=sys.stderr, flush=True)

    stats = produce_events(
        args.bootstrap_servers, args.topic, rows, rate=args.rate, speedup=args.speedup,
        progress=None if args.quiet else report, partitions=args.partitions,
        connect_timeout=args.connect_timeout, producer_config=dict(args.producer_option),
    )
    print(_summary(stats, args.topic), flush=True)
    return 0
