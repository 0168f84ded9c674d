"""Whole-batch preparation of plain tuples (streamer.core.columns) and the Trainer path that uses it."""

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.columns import maintenance_points, plain_columns
from streamer.events import MAX_ID_LENGTH

from tests.core.synthetic import clustered_events


def test_plain_tuples_become_columns():
    users, items, stamps = plain_columns([("u", "a", 1.5), ("v", "b", 2)])
    assert users == ["u", "v"] and items == ["a", "b"]
    assert stamps.dtype == np.float64 and stamps.tolist() == [1.5, 2.0]


@pytest.mark.parametrize("records", [
    [],
    [("u", "a", 1.0), ["u", "b", 2.0]],  # a list, not a tuple
    [("u", "a", 1.0), ("u", "b")],
    [("u", "a", 1.0, "extra")],
    [("u", 7, 1.0)],
    [("", "a", 1.0)],
    [("u", "a" * (MAX_ID_LENGTH + 1), 1.0)],
    [("u", "a", float("nan"))],
    [("u", "a", -1.0)],
    [("u", "a", float("inf"))],
    [("u", "a", True)],
    [("u", "a", "1.0")],
    [("u", "a", 10**400)],
    [("u", "a", 2**1024 - 2**970)],  # an int above the largest float that rounds down to it
])
def test_anything_unusual_is_left_to_the_per_record_path(records):
    assert plain_columns(records) is None


def test_maintenance_points_are_where_the_running_maximum_reaches_the_next_time():
    stamps = np.array([5.0, 3.0, 70.0, 69.0, 71.0, 140.0])
    points, watermark, next_time = maintenance_points(stamps, 2.0, 4.0, 60.0)
    assert points == [0, 2, 5] and watermark == 140.0 and next_time == 200.0
    assert maintenance_points(np.array([1.0, 2.0]), 2.0, 100.0, 60.0) == ([], 2.0, 100.0)


def test_tuples_learn_exactly_what_dicts_learn_record_by_record():
    events = clustered_events(clusters=5, sessions=300, seed=4)
    retired_item = events[10][1]
    columns, records = Trainer(vector_size=16, seed=2), Trainer(vector_size=16, seed=2)
    for trainer in (columns, records):
        trainer.learn(events[:50])
        trainer.catalog([{"op": "retire", "item": retired_item}])
    as_dicts = [{"user": user, "item": item, "ts": ts} for user, item, ts in events[50:]]
    report_columns, report_records = columns.learn(events[50:]), records.learn(as_dicts)
    assert report_columns.accepted == report_records.accepted < len(events) - 50
    assert [reason for _, reason in report_columns.rejected] == [reason for _, reason in report_records.rejected]
    assert {reason for _, reason in report_columns.rejected} == {"retired_item"}
    assert columns.vectors()[0] == records.vectors()[0]
    assert np.array_equal(columns.vectors()[1], records.vectors()[1])
    assert columns.open_session_count == records.open_session_count
    assert columns.watermark == records.watermark
