"""``streamer lookup ITEM [--k 10] [--user USER] [--titles movies.csv]``: read what the daemon published."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from streamer.config import load_settings
from streamer.errors import StreamerError
from streamer.io.redis_sink import connect_redis
from streamer.lookup import Lookup, SearchUnavailable

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "read_titles", "run"]

HELP = "print an item's published neighbours (and a user's recommendations) from Redis"
DESCRIPTION = (
    "Reads the neighbour list the daemon published for ITEM ({ns}:nn:ITEM) and prints it with scores, "
    "and titles when a catalog CSV is given. --user prints the user's top-K through the Redis vector index "
    "(needs the search module: Redis Stack or Redis 8)."
)
ID_COLUMNS = ("movieid", "itemid", "item_id", "item", "id")
TITLE_COLUMNS = ("title", "name")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    unset = argparse.SUPPRESS  # absent options come from the settings (env / TOML), not from argparse
    parser.add_argument("item", nargs="?", default=unset, help="item id whose neighbours to print")
    parser.add_argument("--k", type=int, default=10, help="how many neighbours / recommendations")
    parser.add_argument("--user", default=unset, help="also print this user's top-K recommendations")
    parser.add_argument("--redis-url", default=unset, help="Redis to read (default: env STREAMER_REDIS_URL, "
                        "the --config TOML, or redis://localhost:6379/0; password/TLS settings as for streamer run)")
    parser.add_argument("--namespace", default=unset, help="key namespace the daemon publishes under "
                        "(default: env STREAMER_NAMESPACE or i2v)")
    parser.add_argument("--config", default=unset, metavar="PATH", help="TOML settings file, as for streamer run "
                        "(env STREAMER_CONFIG)")
    parser.add_argument("--titles", type=Path, default=unset, metavar="CSV",
                        help="catalog CSV for titles: MovieLens movies.csv (movieId,title,...) or id,title")


def read_titles(path: Path) -> dict[str, str]:
    """``{item id: title}`` from a CSV whose header names an id column and a title column.

    Recognised headers: movieId / itemId / item_id / item / id and title / name (any case); a file
    without a recognised header is read as ``id,title`` rows.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise StreamerError(f"cannot read titles from {path}: {error}") from error
    if not rows:
        return {}
    header = [name.strip().lower() for name in rows[0]]
    id_column = next((header.index(name) for name in ID_COLUMNS if name in header), None)
    title_column = next((header.index(name) for name in TITLE_COLUMNS if name in header), None)
    if id_column is None or title_column is None:
        id_column, title_column, data = 0, 1, rows
    else:
        data = rows[1:]
    width = max(id_column, title_column)
    return {row[id_column].strip(): row[title_column].strip() for row in data if len(row) > width}


def _format_rows(ranked: list[tuple[str, float]], titles: dict[str, str]) -> list[str]:
    id_width = max(len(item) for item, _ in ranked)
    return [f"{rank:>4}  {score:7.4f}  {item:<{id_width}}  {titles.get(item, '')}".rstrip()
            for rank, (item, score) in enumerate(ranked, start=1)]


def _label(item: str, titles: dict[str, str]) -> str:
    return f"{item} ({titles[item]})" if item in titles else item


def _print_neighbours(lookup: Lookup, item: str, k: int, titles: dict[str, str]) -> int:
    neighbours = lookup.similar(item, k)
    if not neighbours:
        if lookup.vector(item) is None:
            print(f"item {_label(item, titles)} is not published in namespace {lookup.namespace!r}", file=sys.stderr)
            return 1
        print(f"item {_label(item, titles)} has a vector but no neighbour list yet "
              "(neighbours are refreshed on a slower cadence than vectors)")
        return 0
    print(f"neighbours of {_label(item, titles)} in namespace {lookup.namespace!r} "
          "(score as published by the model):")
    print("\n".join(_format_rows(neighbours, titles)))
    return 0


def _print_recommendations(lookup: Lookup, user: str, k: int, titles: dict[str, str]) -> int:
    try:
        recommended = lookup.recommend_for_user(user, k)
    except SearchUnavailable as error:
        print(f"no recommendations for user {user}: {error}", file=sys.stderr)
        return 1
    if not recommended:
        print(f"user {user} has no current interest vector in namespace {lookup.namespace!r} "
              "(unknown, or expired after its TTL)", file=sys.stderr)
        return 1
    print(f"top {len(recommended)} for user {user} in namespace {lookup.namespace!r}:")
    print("\n".join(_format_rows(recommended, titles)))
    return 0


def run(args: argparse.Namespace) -> int:
    item, user, titles_path = (getattr(args, name, None) for name in ("item", "user", "titles"))
    if not item and not user:
        raise StreamerError("give an ITEM, --user USER, or both")
    if args.k <= 0:
        raise StreamerError(f"--k must be positive, got {args.k}")
    titles = read_titles(titles_path) if titles_path else {}
    flags = {name: getattr(args, name) for name in ("redis_url", "namespace", "config") if hasattr(args, name)}
    settings = load_settings(flags=flags)
    client = connect_redis(settings)
    status = 0
    try:
        lookup = Lookup(client=client, namespace=settings.namespace)
        if item:
            status = _print_neighbours(lookup, item, args.k, titles)
        if user:
            status = max(status, _print_recommendations(lookup, user, args.k, titles))
    finally:
        client.close()
    return status
