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
    "DATASETS",
    "DatasetError",
    "default_data_root",
    "load_events",
    "read_csv",
    "read_dataset",
    "resolve_dataset",
]

Row = tuple[str, str, float]


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
