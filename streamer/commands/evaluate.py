"""``streamer eval``: the protocol of shared/EVALUATION.md on a shared data set or any CSV, every model in one run."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from streamer.commands import comma_choices
from streamer.datasets import load_events
from streamer.errors import StreamerError

__all__ = ["DEFAULT_MODELS", "HELP", "MODEL_NAMES", "add_arguments", "build_model", "run"]

HELP = "score streamer against count and gensim baselines (chunked prequential next-item protocol)"
DESCRIPTION = (
    "Chunked prequential next-item evaluation (shared/EVALUATION.md): warm-up on the first 80% of time, "
    "then S slices, each queried (previous session item -> item, HR@10/MRR@10) before the models learn it. "
    "Prints the table, writes DIR/<data set>-S<S>.json and .png. --via-kafka adds the served path: the real "
    "daemon learns the same slices through Kafka and the models read its vectors and neighbour lists from Redis."
)
MODEL_NAMES = ("streamer", "streamer-cosine", "cooc", "cooc-attr", "popular", "gensim-static", "gensim-online",
               "gensim-retrain", "streamer-exact")
CATALOG_ONLY = ("cooc-attr",)  # models that exist only with the catalog (without it, cooc-attr is cooc)
BUILT_IN = "built-in"
DEFAULT_MODELS = ",".join(name for name in MODEL_NAMES if name != "streamer-exact")  # exact: on request


def build_model(name: str, seed: int):
    """A fresh model of the protocol by its command-line name."""
    from streamer.evaluation import baselines

    if name == "popular":
        return baselines.PopularityModel()
    if name == "cooc":
        return baselines.CooccurrenceModel()
    if name == "cooc-attr":
        return baselines.CooccurrenceAttributeModel()
    if name.startswith("gensim-"):
        from streamer.evaluation.gensim_models import GensimModel

        return GensimModel(name.removeprefix("gensim-"), seed=seed)
    from streamer.evaluation import streamer_models

    try:
        if name == "streamer":
            return streamer_models.StreamerModel(seed=seed)
        if name == "streamer-cosine":
            return streamer_models.StreamerCosineModel(seed=seed)
        if name == "streamer-exact":
            return streamer_models.StreamerExactModel(seed=seed)
    except ImportError as error:
        raise StreamerError(f"model {name!r} needs the engine (streamer.Trainer): {error}") from error
    raise StreamerError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")


def _model_list(text: str) -> list[str]:
    return comma_choices(text, MODEL_NAMES, "model")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET",
                        help="movielens | yoochoose | diginetica, a shared data folder, or a CSV file with --columns")
    parser.add_argument("--slices", type=_positive, default=10, help="S, the number of equal time slices after the warm-up")
    parser.add_argument("--models", type=_model_list, default=DEFAULT_MODELS,
                        help="comma-separated models to run, all in the same run")
    parser.add_argument("--columns", default=None,
                        help="CSV input: user,item,ts column names (or 0-based indexes with --no-header)")
    parser.add_argument("--delimiter", default=",", help="CSV delimiter (\\t for tab)")
    parser.add_argument("--no-header", action="store_true", help="the CSV has no header row")
    parser.add_argument("--out", type=Path, default=Path("eval-results"), help="directory for the JSON and PNG")
    parser.add_argument("--limit", type=_positive, default=None, help="keep only the first N events in time order")
    parser.add_argument("--seed", type=int, default=1, help="seed of every randomised model")
    catalog = parser.add_argument_group("catalog protocol", "shared/EVALUATION.md §7: before each chunk is learned, "
                                        "the models that use a catalog receive the upserts of its new items; the "
                                        "table and plot show them with and without (name+catalog)")
    catalog.add_argument("--catalog", nargs="?", const=BUILT_IN, default=None, metavar="FILE",
                         help="alone: the data set's built-in catalog (movielens movies.csv genres, diginetica "
                              "product-categories.csv); with FILE: a CSV read with --catalog-columns")
    catalog.add_argument("--catalog-columns", default=None,
                         help="with --catalog FILE: item,attr1,... column names (a |-separated cell gives one "
                              "attribute per value)")
    catalog.add_argument("--catalog-delimiter", default=",", help="with --catalog FILE: its delimiter (\\t for tab)")
    served = parser.add_argument_group("served path", "drive the real daemon through Kafka and score what it "
                                       "publishes to Redis, next to the in-process models")
    served.add_argument("--via-kafka", action="store_true",
                        help="also run streamer@kafka (published neighbour lists) and streamer-cosine@kafka "
                             "(published vectors): slices are produced to Kafka, the daemon (python -m streamer "
                             "run) learns them, and each slice is queried once its offsets are committed")
    served.add_argument("--bootstrap-servers", default=None,
                        help="with --via-kafka: use this broker (and --redis-url) instead of an embedded local stack")
    served.add_argument("--redis-url", default=None, help="with --via-kafka: the Redis of --bootstrap-servers")


def _label(dataset: str, csv_input: bool) -> str:
    name = Path(dataset).stem if csv_input or "/" in dataset else dataset
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "dataset"


def _progress(stream) -> Callable:
    def report(name: str, index: int, count: int, chunk) -> None:
        print(f"  {name:<16} slice {index + 1:>3}/{count}: {chunk.pairs:>6} pairs  HR {chunk.hit_rate:.3f}  "
              f"learn {chunk.learn_seconds:.2f}s", file=stream, flush=True)
    return report


SERVED_COUNTERPARTS = {"streamer": "streamer@kafka", "streamer-cosine": "streamer-cosine@kafka"}


def _served_results(args: argparse.Namespace, split, upserts=None) -> list:
    """The served-path models of the selected streamer models (both when none is selected), in step; with
    ``upserts`` the daemon also reads a catalog topic and the results are named ``...@kafka+catalog``."""
    from streamer.evaluation import kafka_models

    wanted = [SERVED_COUNTERPARTS[name] for name in args.models if name in SERVED_COUNTERPARTS]
    wanted = wanted or list(SERVED_COUNTERPARTS.values())
    classes = {"streamer@kafka": kafka_models.ServedNeighboursModel,
               "streamer-cosine@kafka": kafka_models.ServedCosineModel}
    path = kafka_models.ServedPath(seed=args.seed, bootstrap_servers=args.bootstrap_servers, redis_url=args.redis_url,
                                   catalog=upserts is not None)
    started = time.perf_counter()
    print(f"served path: daemon + Kafka + Redis for {', '.join(wanted)}", file=sys.stderr, flush=True)
    with path:
        print(f"  daemon log: {path.log_path} (removed at the end unless the run fails)", file=sys.stderr, flush=True)
        results = kafka_models.evaluate_in_step([classes[name](path) for name in wanted], split,
                                                progress=_progress(sys.stderr), upserts=upserts)
    print(f"served path: done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return results


def _delimiter(text: str) -> str:
    return "\t" if text in ("\\t", "tab") else text


def load_args_catalog(args: argparse.Namespace):
    """The catalog the arguments ask for (item -> attributes), or None without --catalog."""
    from streamer.datasets import load_catalog, read_catalog_csv

    source = getattr(args, "catalog", None)
    if source is None:
        if getattr(args, "catalog_columns", None):
            raise StreamerError("--catalog-columns needs --catalog FILE")
        return None
    if source == BUILT_IN:
        if args.catalog_columns:
            raise StreamerError("--catalog-columns needs --catalog FILE")
        return load_catalog(args.dataset)
    if not args.catalog_columns:
        raise StreamerError("--catalog FILE needs --catalog-columns item,attr1,...")
    columns = [column.strip() for column in args.catalog_columns.split(",")]
    if not Path(source).is_file():
        raise StreamerError(f"catalog file {source!r} not found")
    return read_catalog_csv(source, columns, delimiter=_delimiter(args.catalog_delimiter))


def _runs(names: list[str], catalog) -> list[tuple[str, bool]]:
    """(model, with catalog) in table order: a model that uses the catalog runs without it, then with it."""

    runs = []
    for name in names:
        if name in CATALOG_ONLY:
            if catalog is not None:
                runs.append((name, True))
            continue
        runs.append((name, False))
        if catalog is not None and name not in ("cooc", "popular") and not name.startswith("gensim-"):
            runs.append((name, True))
    return runs


def run(args: argparse.Namespace) -> int:
    from streamer.evaluation.protocol import catalog_upserts, evaluate, split_events
    from streamer.evaluation.report import format_table, result_document, write_json, write_plot

    if (getattr(args, "bootstrap_servers", None) is None) != (getattr(args, "redis_url", None) is None):
        raise StreamerError("--bootstrap-servers and --redis-url go together (neither = embedded local stack)")
    csv_input = args.columns is not None
    columns = [column.strip() for column in args.columns.split(",")] if csv_input else None
    if columns is not None and len(columns) != 3:
        raise StreamerError("--columns needs exactly three names: user,item,ts")
    delimiter = _delimiter(args.delimiter)
    events = load_events(args.dataset, columns=columns, delimiter=delimiter, header=not args.no_header,
                         limit=args.limit)
    if not events:
        raise StreamerError(f"no events read from {args.dataset!r}")
    catalog = load_args_catalog(args)
    split = split_events(events, slices=args.slices)
    upserts = catalog_upserts(split, catalog) if catalog is not None else None
    label = _label(args.dataset, csv_input)
    pairs = sum(len(queries) for queries in split.queries)
    described = f", catalog of {len(catalog)} items" if catalog is not None else ""
    print(f"{label}: {len(events)} events, warm-up {len(split.warmup)}, S = {args.slices}, {pairs} query pairs"
          f"{described}", file=sys.stderr, flush=True)
    runs = [(build_model(name, args.seed), with_catalog) for name, with_catalog in _runs(args.models, catalog)]
    results = []
    for model, with_catalog in runs:  # models built first: fail fast on a missing extra
        started = time.perf_counter()
        print(f"{model.name}{' with the catalog' if with_catalog else ''}: learning the warm-up", file=sys.stderr, flush=True)
        results.append(evaluate(model, split, progress=_progress(sys.stderr), upserts=upserts if with_catalog else None))
        print(f"{results[-1].name}: done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    if getattr(args, "via_kafka", False):
        results.extend(_served_results(args, split, upserts))
    document = result_document(label, split, results, seed=args.seed, limit=args.limit,
                               via_kafka=bool(getattr(args, "via_kafka", False)),
                               catalog=None if catalog is None else (args.catalog, len(catalog)))
    stem = f"{label}-S{args.slices}"
    json_path = write_json(document, args.out / f"{stem}.json")
    plot_path = write_plot(document, args.out / f"{stem}.png")
    print(f"{label}, S = {args.slices}, K = 10")
    print(format_table(results))
    print(f"wrote {json_path} and {plot_path}")
    return 0
