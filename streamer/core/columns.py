"""Whole-batch preparation for ``Trainer.learn``: a list of plain ``(user, item, ts)`` tuples checked and cut
into columns with C-level built-ins (``map``, ``set``, ``itemgetter``, numpy) instead of a Python step per record.

:func:`plain_columns` applies the rules of :func:`streamer.events.is_plain_event` to every record at once
and returns None when any record needs the per-record path (another shape, an invalid or unusual value):
the batch is then learned record by record, with the same result. :func:`confirmed_times` gives each
event the time the watermark may move to (the minimum of the last ``quorum`` event times), and
:func:`maintenance_points` finds the events before which the per-record loop would run its event-time
housekeeping.

>>> columns = plain_columns([("u", "a", 1.0), ("u", "b", 2)])
>>> columns[0], columns[1], columns[2].tolist()
(['u', 'u'], ['a', 'b'], [1.0, 2.0])
>>> plain_columns([("u", "a", float("nan"))]) is None
True
>>> maintenance_points(np.array([5.0, 6.0, 70.0, 71.0, 200.0]), float("-inf"), float("-inf"), 60.0)
([0, 2, 4], 200.0, 260.0)
>>> confirmed, recent = confirmed_times(np.array([4.0]), np.array([5.0, 90000.0, 6.0, 7.0]), 2)
>>> confirmed.tolist(), recent.tolist()  # the lone 90000 never confirms
([4.0, 5.0, 6.0, 6.0], [7.0])
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np

from streamer.events import MAX_ID_LENGTH

__all__ = ["plain_columns", "maintenance_points", "confirmed_times"]

_LATEST = float(np.finfo(np.float64).max)
_STAMP_TYPES = {float, int}


def plain_columns(records: list, latest: float = _LATEST) -> tuple[list, list, np.ndarray] | None:
    """(users, items, timestamps as float64) when every record is a ``(str, str, int|float)`` tuple that
    :func:`is_plain_event` accepts; None otherwise (nothing is rejected here)."""
    if not records or set(map(type, records)) != {tuple} or set(map(len, records)) != {3}:
        return None
    users, items, stamps = (list(map(itemgetter(position), records)) for position in range(3))
    stamp_types = set(map(type, stamps))
    if set(map(type, users)) != {str} or set(map(type, items)) != {str} or not stamp_types <= _STAMP_TYPES:
        return None
    for ids in (users, items):
        lengths = list(map(len, ids))
        if min(lengths) == 0 or max(lengths) > MAX_ID_LENGTH:
            return None
    try:
        timestamps = np.array(stamps, np.float64)
    except OverflowError:
        return None
    if not (np.all(timestamps >= 0.0) and np.all(timestamps <= latest)):  # NaN fails both
        return None
    if int in stamp_types and max(stamps) > latest:  # compared exactly: an int may round down to the bound
        return None
    return users, items, timestamps


def confirmed_times(recent: np.ndarray, timestamps: np.ndarray, quorum: int) -> tuple[np.ndarray, np.ndarray]:
    """For each event, the minimum time of the last ``quorum`` events up to it (``recent``: the last
    ``quorum - 1`` times before the batch; fewer at the stream's start), and the new ``recent``. The
    watermark moves only to such a time, so a lone event far ahead of the others does not move it."""
    if quorum <= 1:
        return timestamps, timestamps[:0]
    padding = np.full(max(0, quorum - 1 - len(recent)), np.inf)
    joined = np.concatenate([padding, recent, timestamps])
    confirmed = np.lib.stride_tricks.sliding_window_view(joined, quorum).min(axis=1)
    return confirmed, np.concatenate([recent, timestamps])[-(quorum - 1):]


def maintenance_points(timestamps: np.ndarray, watermark: float, next_maintenance: float,
                       interval: float) -> tuple[list[int], float, float]:
    """Indices of the events that start event-time housekeeping (the first event whose time reaches the next
    maintenance time; the next one is then ``interval`` after it), the new watermark and next maintenance time.

    The per-record loop checks ``ts >= next_maintenance`` for each event that raises the watermark; since
    the next maintenance time is always above the watermark, that is the first event whose running maximum
    reaches it."""
    running = np.maximum.accumulate(timestamps)
    points, start = [], 0
    while start < len(running):
        index = start + int(np.searchsorted(running[start:], next_maintenance, side="left"))
        if index >= len(running):
            break
        points.append(index)
        next_maintenance = float(timestamps[index]) + interval
        start = index + 1
    if len(running):
        watermark = max(watermark, float(running[-1]))
    return points, watermark, next_maintenance
