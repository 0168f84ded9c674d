"""Readers for interaction logs: the three shared public sets and any CSV.

Every reader yields ``(key, item, ts)`` tuples — key and item as strings, ts as
unix seconds (float) — and :func:`load_events` returns them sorted by ts (stable),
which is the order both ``streamer replay`` and the evaluation protocol use.

>>> rows = list(read_csv(io.StringIO("u,i,t\\n1,a,5\\n1,b,3\\n"), columns=("u", "i", "t")))
>>> rows
[('1', 'a', 5.0), ('1', 'b', 3.0)]
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from streamer.errors import StreamerError

__all__ = [
    "CATALOGS",
    "DATASETS",
    "DatasetError",
    "load_catalog",
    "read_catalog_csv",
    "default_data_root",
    "load_events",
    "read_csv",
    "read_dataset",
    "resolve_dataset",
]

Row = tuple[str, str, float]
Catalog = dict[str, dict[str, str]]  # item -> attributes, as a catalog upsert's "attrs"
MULTI_VALUE_SEPARATOR = "|"


class DatasetError(StreamerError):
    """A data set could not be found or read."""


def default_data_root() -> Path:
    """Where the shared data sets live: ``$STREAMER_DATA_ROOT`` or ``../shared/data`` from the repo."""
    configured = os.environ.get("STREAMER_DATA_ROOT")
    if configured:
        return Path(configured)
    repository = Path(__file__).resolve().parent.parent
    return repository.parent / "shared" / "data"


def _float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _timestamp_or_none(text: str) -> float | None:
    """Unix seconds from a number or an ISO-8601 date/time (UTC when it has no offset)."""
    value = _float_or_none(text)
    if value is not None:
        return value
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except (AttributeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _column_indexes(columns, names: list[str] | None) -> list[int]:
    """Positions of user, item, ts: names looked up in the header, or 0-based indexes."""
    indexes = []
    for column in columns:
        text = str(column).strip()
        if names is not None and text in names:
            indexes.append(names.index(text))
        elif text.isdigit():
            indexes.append(int(text))
        elif names is None:
            raise DatasetError(f"without a header, columns must be 0-based indexes, got {column!r}")
        else:
            raise DatasetError(f"column {text!r} not in header {names}")
    return indexes


def read_csv(
    source: str | Path | io.TextIOBase,
    columns: tuple[str, str, str] | list[str] = ("user", "item", "ts"),
    delimiter: str = ",",
    header: bool = True,
) -> Iterator[Row]:
    """Generic reader. ``columns`` names (with a header) or 0-based indexes of user, item, ts.

    ts is unix seconds or ISO-8601 (UTC unless it carries an offset). Rows with a missing field or an
    unreadable ts are skipped; ``skipped`` counts are not kept here —
    callers that need them validate the events themselves (see :mod:`streamer.events`).
    """
    if len(columns) != 3:
        raise DatasetError(f"columns must name user, item and ts (three entries), got {list(columns)}")
    handle = open(source, newline="", encoding="utf-8-sig") if isinstance(source, (str, Path)) else source
    try:
        reader = csv.reader(handle, delimiter=delimiter)
        names = [name.strip() for name in next(reader, None) or []] if header else None
        user_index, item_index, ts_index = indexes = _column_indexes(columns, names)
        width = max(indexes)
        for fields in reader:
            if len(fields) <= width:
                continue
            user, item = fields[user_index].strip(), fields[item_index].strip()
            ts = _timestamp_or_none(fields[ts_index])
            if user and item and ts is not None:
                yield user, item, ts
    finally:
        if handle is not source:
            handle.close()


def read_movielens(folder: Path) -> Iterator[Row]:
    """MovieLens ``ratings.csv``: userId,movieId,rating,timestamp; every rating is an interaction."""
    yield from read_csv(folder / "ratings.csv", columns=("userId", "movieId", "timestamp"))


def read_yoochoose(folder: Path) -> Iterator[Row]:
    """YOOCHOOSE session-rec files: tab-separated SessionId, ItemId, Time; train_full then test."""
    files = sorted(folder.glob("*_train_full.txt")) + sorted(folder.glob("*_test.txt"))
    if not files:
        raise DatasetError(f"no *_train_full.txt / *_test.txt under {folder}")
    for path in files:
        yield from read_csv(path, columns=("SessionId", "ItemId", "Time"), delimiter="\t")


def _diginetica_ts(timeframe: str, eventdate: str) -> float | None:
    milliseconds = _float_or_none(timeframe)
    try:
        day = datetime.datetime.strptime(eventdate.strip(), "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    if milliseconds is None:
        return None
    return day.timestamp() + milliseconds / 1000.0


DIGINETICA_CATEGORIES = "product-categories.csv"  # the catalog, beside the views file (not events)


def read_diginetica(folder: Path) -> Iterator[Row]:
    """DIGINETICA ``;`` file: session_id;user_id;item_id;timeframe;eventdate.

    Key = session_id (user_id is mostly NA); ts = eventdate (UTC midnight) + timeframe milliseconds.
    """
    files = sorted(path for path in folder.glob("*.csv") if path.name != DIGINETICA_CATEGORIES)
    if not files:
        raise DatasetError(f"no item-views .csv under {folder}")
    with open(files[0], newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=";")
        next(reader, None)
        for fields in reader:
            if len(fields) < 5:
                continue
            ts = _diginetica_ts(fields[3], fields[4])
            session, item = fields[0].strip(), fields[2].strip()
            if session and item and ts is not None:
                yield session, item, ts


DATASETS = {
    "movielens": ("movielens_latest_small_2016", read_movielens),
    "yoochoose": ("yoochoose_100k_sessionrec", read_yoochoose),
    "diginetica": ("diginetica_sample_srgnn", read_diginetica),
}


def resolve_dataset(name_or_path: str, data_root: Path | None = None) -> tuple[str, Path]:
    """Map a data set name (``movielens``, ``yoochoose``, ``diginetica``) or a folder to (kind, folder)."""
    root = data_root or default_data_root()
    if name_or_path in DATASETS:
        folder = root / DATASETS[name_or_path][0]
        if not folder.is_dir():
            raise DatasetError(f"data set {name_or_path!r} not found at {folder} (set STREAMER_DATA_ROOT)")
        return name_or_path, folder
    path = Path(name_or_path)
    for kind, (folder_name, _) in DATASETS.items():
        if path.name == folder_name and path.is_dir():
            return kind, path
    raise DatasetError(f"unknown data set {name_or_path!r}; known: {', '.join(DATASETS)} or a CSV with --columns")


def read_dataset(name_or_path: str, data_root: Path | None = None) -> Iterator[Row]:
    """Rows of a shared data set in file order (not sorted)."""
    kind, folder = resolve_dataset(name_or_path, data_root)
    return DATASETS[kind][1](folder)


def load_events(
    name_or_path: str,
    columns: Iterable[str] | None = None,
    delimiter: str = ",",
    header: bool = True,
    limit: int | None = None,
    data_root: Path | None = None,
) -> list[Row]:
    """All rows of a named data set, or of a CSV file when ``columns`` is given, sorted by ts (stable).

    ``limit`` keeps the first ``limit`` events in time order.
    """
    if columns is not None:
        rows = list(read_csv(name_or_path, columns=tuple(columns), delimiter=delimiter, header=header))
    else:
        rows = list(read_dataset(name_or_path, data_root))
    rows.sort(key=lambda row: row[2])
    return rows[:limit] if limit is not None else rows


# ---- catalogs: item -> attributes, for the catalog protocol (shared/EVALUATION.md §7) ----------------------


def read_catalog_csv(source: str | Path | io.TextIOBase, columns: list[str], delimiter: str = ",",
                     header: bool = True) -> Catalog:
    """``columns`` = item, then attribute columns (names with a header, else 0-based indexes).

    A column whose cells hold single values gives ``{column: value}``; a column where some cell holds
    ``|``-separated values gives one attribute per value, ``{"column:value": "1"}`` (decided per column over the
    whole file, so every item of that column is described the same way). Empty cells give no attribute.
    """
    if len(columns) < 2:
        raise DatasetError(f"catalog columns must name the item and at least one attribute, got {list(columns)}")
    handle = open(source, newline="", encoding="utf-8-sig") if isinstance(source, (str, Path)) else source
    try:
        reader = csv.reader(handle, delimiter=delimiter)
        names = [name.strip() for name in next(reader, None) or []] if header else None
        indexes = _column_indexes(columns, names)
        labels = [names[index] if names is not None else str(index) for index in indexes[1:]]
        rows = [fields for fields in reader if len(fields) > max(indexes) and fields[indexes[0]].strip()]
    finally:
        if handle is not source:
            handle.close()
    multi = [any(MULTI_VALUE_SEPARATOR in fields[index] for fields in rows) for index in indexes[1:]]
    catalog: Catalog = {}
    for fields in rows:
        attributes = catalog.setdefault(fields[indexes[0]].strip(), {})
        for label, index, several in zip(labels, indexes[1:], multi):
            values = [value.strip() for value in fields[index].split(MULTI_VALUE_SEPARATOR)] if several else [fields[index].strip()]
            for value in filter(None, values):
                attributes.update({f"{label}:{value}": "1"} if several else {label: value})
    return catalog


def read_movielens_catalog(folder: Path) -> Catalog:
    """``movies.csv``: one attribute per genre, ``{"genre:Comedy": "1", ...}`` ("(no genres listed)" gives none)."""
    catalog = read_catalog_csv(folder / "movies.csv", ["movieId", "genres"])
    return {item: {"genre:" + name.removeprefix("genres:"): "1" for name in attributes
                   if name != "genres:(no genres listed)"}
            for item, attributes in catalog.items()}


def read_diginetica_catalog(folder: Path) -> Catalog:
    """``product-categories.csv`` (``itemId;categoryId``): ``{"category": "<id>"}``."""
    catalog = read_catalog_csv(folder / DIGINETICA_CATEGORIES, ["itemId", "categoryId"], delimiter=";")
    return {item: {"category": attributes["categoryId"]} for item, attributes in catalog.items() if attributes}


CATALOGS = {"movielens": read_movielens_catalog, "diginetica": read_diginetica_catalog}


def load_catalog(name_or_path: str, data_root: Path | None = None) -> Catalog:
    """The built-in catalog of a shared data set (``movielens``, ``diginetica``) by name or folder."""
    try:
        kind, folder = resolve_dataset(name_or_path, data_root)
    except DatasetError:
        kind, folder = None, None
    if kind not in CATALOGS:
        raise DatasetError(f"no built-in catalog for {name_or_path!r} (built-in: {', '.join(CATALOGS)}); "
                           "give --catalog FILE --catalog-columns item,attr1,...")
    return CATALOGS[kind](folder)
