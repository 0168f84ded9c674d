"""``streamer bench``: every benchmark in one run — training vs gensim, memory, daemon vs raw consume and
freshness, lookup latency vs PING — printed with ratios and written as JSON and a Markdown table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streamer.benchmarks.report import OPTIONAL_SECTIONS, SECTIONS
from streamer.commands import comma_choices
from streamer.errors import StreamerError

__all__ = ["HELP", "add_arguments", "run"]

HELP = "run the benchmark suite (training, memory, daemon end to end, lookup, neighbours) and write one report"
DESCRIPTION = (
    "Runs, in one process tree: Trainer.learn tokens/s vs gensim Word2Vec(sg=1) with 1 and 2 workers; peak RSS "
    "with 1M items; the daemon's end-to-end events/s vs a raw kafka-python consumer and its freshness p50/p99 "
    "at 10,000 events/s (embedded Tansu broker + redis-server); Lookup latency vs a raw PING; neighbour lists/s "
    "from the index vs exact, recall@10, index memory and list age. Prints the table "
    "with ratios and writes DIR/bench.json and DIR/bench.md. Needs a source checkout (the scripts under ops/) "
    "and the eval extra (gensim)."
)


def _sections(text: str) -> list[str]:
    return comma_choices(text, SECTIONS + OPTIONAL_SECTIONS, "section")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a smoke run (< 1 min); the numbers are not the ones to publish")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for bench.json and bench.md")
    parser.add_argument("--sections", type=_sections, default=",".join(SECTIONS),
                        help="comma-separated sections: any of " + ",".join(SECTIONS) + ", and the optional "
                             "scale (a catalog growing to 1M and 10M items: an hour and ~15 GB; --quick: 100k "
                             "items) and spare_replay")


def run(args: argparse.Namespace) -> int:
    from streamer.benchmarks.report import compute_ratios, markdown_report, text_report
    from streamer.benchmarks.suite import run_suite

    sections = _sections(args.sections) if isinstance(args.sections, str) else args.sections
    document = run_suite(quick=args.quick, sections=sections,
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    document["command"] = "streamer bench" + (" --quick" if args.quick else "")
    document["ratios"] = compute_ratios(document["sections"])
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        (args.out / "bench.md").write_text(markdown_report(document), encoding="utf-8")
    except OSError as error:
        raise StreamerError(f"cannot write the report to {args.out}: {error}") from error
    print(text_report(document))
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    failed = [name for name, section in document["sections"].items() if "error" in section]
    return 1 if failed else 0
