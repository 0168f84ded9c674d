"""Validation of event and catalog records and payload decoding (streamer.events)."""

import math

import orjson
import pytest

from streamer.events import (
    MAX_ID_LENGTH, CatalogUpdate, Event, InvalidRecord, decode_payload, parse_catalog_update, parse_event,
)


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(InvalidRecord) as caught:
        call(*args, **kwargs)
    return caught.value.reason


def test_tuple_and_dict_events_parse():
    assert parse_event(("u", "i", 5)) == Event("u", "i", 5.0)
    event = parse_event({"user": "u", "item": "i", "ts": 1.5, "type": "click", "weight": 2})
    assert (event.type, event.weight) == ("click", 2.0)


def test_iso_timestamps_and_int_ids():
    assert parse_event({"user": 1, "item": 2, "ts": "1970-01-01T00:00:10Z"}) == Event("1", "2", 10.0)
    assert parse_event(("u", "i", "1970-01-01T00:00:10")).ts == 10.0  # naive = UTC


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"item": "i", "ts": 1}, "missing_field:user"),
        ({"user": "u", "ts": 1}, "missing_field:item"),
        ({"user": "u", "item": "i"}, "missing_field:ts"),
        ({"user": "u", "item": "i", "ts": math.nan}, "bad_ts"),
        ({"user": "u", "item": "i", "ts": math.inf}, "bad_ts"),
        ({"user": "u", "item": "i", "ts": -1}, "bad_ts"),
        ({"user": "u", "item": "i", "ts": True}, "bad_ts"),
        ({"user": "u", "item": "i", "ts": "yesterday"}, "bad_ts"),
        ({"user": "u", "item": "i", "ts": [1]}, "bad_ts"),
        ({"user": "", "item": "i", "ts": 1}, "empty_id:user"),
        ({"user": "u", "item": "x" * (MAX_ID_LENGTH + 1), "ts": 1}, "id_too_long:item"),
        ({"user": 1.5, "item": "i", "ts": 1}, "wrong_type:user"),
        ({"user": True, "item": "i", "ts": 1}, "wrong_type:user"),
        ({"user": "u", "item": "i", "ts": 1, "weight": "heavy"}, "wrong_type:weight"),
        ({"user": "u", "item": "i", "ts": 1, "type": 3}, "wrong_type:type"),
        (("u", "i"), "wrong_arity"),
        ("u,i,1", "wrong_type:record"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(record, reason):
    assert reason_of(parse_event, record) == reason


def test_future_timestamps_are_rejected_relative_to_now():
    assert reason_of(parse_event, ("u", "i", 1000.0), now=100.0, max_future_seconds=60) == "future_ts"
    assert parse_event(("u", "i", 150.0), now=100.0, max_future_seconds=60).ts == 150.0


def test_max_length_id_is_accepted():
    assert len(parse_event(("u", "x" * MAX_ID_LENGTH, 1)).item) == MAX_ID_LENGTH


def test_catalog_updates():
    assert parse_catalog_update({"op": "upsert", "item": "a", "attrs": {"brand": "b"}}) == CatalogUpdate(
        "upsert", "a", {"brand": "b"}, None
    )
    assert parse_catalog_update({"op": "retire", "item": "a", "ts": 3}).ts == 3.0
    assert reason_of(parse_catalog_update, {"op": "delete", "item": "a"}) == "bad_op"
    assert reason_of(parse_catalog_update, {"item": "a"}) == "missing_field:op"
    assert reason_of(parse_catalog_update, {"op": "upsert", "item": "a", "attrs": {"k": 1}}) == "wrong_type:attrs"
    assert reason_of(parse_catalog_update, {"op": "retire", "item": ""}) == "empty_id:item"


def test_decode_payload_accepts_object_or_array():
    one = {"user": "u", "item": "i", "ts": 1}
    assert decode_payload(orjson.dumps(one)) == [one]
    assert decode_payload(orjson.dumps([one, one])) == [one, one]


def test_decode_payload_rejects_garbage_and_oversize():
    assert reason_of(decode_payload, b"{not json") == "not_json"
    assert reason_of(decode_payload, b"\xff\xfe") == "not_json"
    assert reason_of(decode_payload, b"[" + b"1," * 100 + b"1]", max_bytes=50) == "oversize"
