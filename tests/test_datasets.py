"""The data-set readers: row counts of the shared sets, the DIGINETICA time rule, the generic CSV reader."""

from __future__ import annotations

import datetime
import io

import pytest

from streamer.datasets import (DatasetError, load_catalog, load_events, read_catalog_csv, read_csv, read_dataset,
                               resolve_dataset)

# Valid rows per shared set. DIGINETICA: the data README says 12,390, but its file has 12,391 rows after
# the header — the last line has no trailing newline, so `wc -l` undercounts by one. All 12,391 are valid.
SHARED_ROW_COUNTS = {"movielens": 100_004, "yoochoose": 83_846, "diginetica": 12_391}
SHARED_KEY_COUNTS = {"movielens": 671, "yoochoose": 21_210, "diginetica": 2_986}
SHARED_ITEM_COUNTS = {"movielens": 9_066, "yoochoose": 2_933, "diginetica": 7_139}


@pytest.fixture(scope="module")
def shared_events(data_root):
    return {name: load_events(name, data_root=data_root) for name in SHARED_ROW_COUNTS}


@pytest.mark.parametrize("name", list(SHARED_ROW_COUNTS))
def test_shared_set_counts_match_the_data_readme(shared_events, name):
    rows = shared_events[name]
    assert len(rows) == SHARED_ROW_COUNTS[name]
    assert len({key for key, _, _ in rows}) == SHARED_KEY_COUNTS[name]
    assert len({item for _, item, _ in rows}) == SHARED_ITEM_COUNTS[name]


@pytest.mark.parametrize("name", list(SHARED_ROW_COUNTS))
def test_shared_sets_are_sorted_by_time_and_typed(shared_events, name):
    rows = shared_events[name]
    timestamps = [ts for _, _, ts in rows]
    assert timestamps == sorted(timestamps)
    assert all(isinstance(key, str) and isinstance(item, str) and isinstance(ts, float) for key, item, ts in rows)


def test_load_events_sort_is_stable_within_each_key(shared_events, data_root):
    # MovieLens has many ratings with the same second; their file order must survive the sort.
    file_order = list(read_dataset("movielens", data_root))
    expected: dict[tuple[str, float], list[str]] = {}
    for key, item, ts in file_order:
        expected.setdefault((key, ts), []).append(item)
    got: dict[tuple[str, float], list[str]] = {}
    for key, item, ts in shared_events["movielens"]:
        got.setdefault((key, ts), []).append(item)
    assert any(len(items) > 1 for items in expected.values())
    assert got == expected


def test_yoochoose_reads_train_then_test(data_root):
    _, folder = resolve_dataset("yoochoose", data_root)
    test_rows = list(read_csv(next(folder.glob("*_test.txt")), columns=("SessionId", "ItemId", "Time"), delimiter="\t"))
    assert list(read_dataset("yoochoose", data_root))[-len(test_rows):] == test_rows


def test_diginetica_ts_is_utc_eventdate_plus_timeframe_milliseconds(data_root):
    first = next(read_dataset("diginetica", data_root))
    # file row: 1;NA;81766;526309;2016-05-09
    midnight = datetime.datetime(2016, 5, 9, tzinfo=datetime.timezone.utc).timestamp()
    assert first == ("1", "81766", pytest.approx(midnight + 526.309))
    assert first[2] == midnight + 526309 / 1000.0


def test_diginetica_key_is_the_session_not_the_mostly_missing_user(shared_events):
    assert "NA" not in {key for key, _, _ in shared_events["diginetica"]}


def test_resolve_dataset_accepts_a_folder_and_rejects_unknown_names(data_root, tmp_path):
    kind, folder = resolve_dataset(str(data_root / "diginetica_sample_srgnn"))
    assert kind == "diginetica" and folder.is_dir()
    with pytest.raises(DatasetError, match="unknown data set"):
        resolve_dataset("no-such-set", data_root)
    with pytest.raises(DatasetError, match="not found"):
        resolve_dataset("movielens", tmp_path)


def test_load_events_limit_keeps_the_earliest(shared_events, data_root):
    assert load_events("diginetica", limit=100, data_root=data_root) == shared_events["diginetica"][:100]


# --- generic CSV reader -------------------------------------------------------------------------------

def test_csv_with_header_by_column_names_in_any_order():
    text = "ts,item,who,extra\n5,a,u1,x\n3,b,u2,y\n"
    rows = list(read_csv(io.StringIO(text), columns=("who", "item", "ts")))
    assert rows == [("u1", "a", 5.0), ("u2", "b", 3.0)]


def test_csv_without_header_by_indexes_and_other_delimiter():
    text = "u1;a;5\nu2;b;3.5\n"
    rows = list(read_csv(io.StringIO(text), columns=("0", "1", "2"), delimiter=";", header=False))
    assert rows == [("u1", "a", 5.0), ("u2", "b", 3.5)]


def test_csv_without_header_keeps_the_first_row():
    rows = list(read_csv(io.StringIO("u1,a,1\n"), columns=(0, 1, 2), header=False))
    assert rows == [("u1", "a", 1.0)]


def test_csv_with_tab_delimiter():
    rows = list(read_csv(io.StringIO("user\titem\tts\nu\ti\t7\n"), delimiter="\t"))
    assert rows == [("u", "i", 7.0)]


def test_csv_skips_invalid_rows():
    text = "user,item,ts\nu1,a,1\n,b,2\nu3,,3\nu4,c,not-a-time\nu5,d\nu6,e,nan\nu7,f,inf\nu8,g,8\n"
    assert list(read_csv(io.StringIO(text))) == [("u1", "a", 1.0), ("u8", "g", 8.0)]


def test_csv_reads_iso_8601_times_as_utc_unless_an_offset_is_given():
    text = "user,item,ts\nu,a,2016-05-09T00:00:01\nu,b,2016-05-09T02:00:00+02:00\nu,c,2016-05-09\n"
    midnight = datetime.datetime(2016, 5, 9, tzinfo=datetime.timezone.utc).timestamp()
    assert list(read_csv(io.StringIO(text))) == [("u", "a", midnight + 1), ("u", "b", midnight), ("u", "c", midnight)]


def test_csv_file_with_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffuser,item,ts\nu,a,1\n".encode("utf-8"))
    assert list(read_csv(path)) == [("u", "a", 1.0)]


def test_csv_column_errors_are_dataset_errors():
    with pytest.raises(DatasetError, match="not in header"):
        list(read_csv(io.StringIO("a,b,c\n1,2,3\n"), columns=("user", "item", "ts")))
    with pytest.raises(DatasetError, match="0-based indexes"):
        list(read_csv(io.StringIO("1,2,3\n"), columns=("user", "item", "ts"), header=False))
    with pytest.raises(DatasetError, match="three"):
        list(read_csv(io.StringIO("a,b\n"), columns=("a", "b")))


def test_load_events_on_a_csv_file_sorts_stably(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user,item,ts\nu1,a,5\nu2,b,3\nu1,c,3\nu3,d,5\nu2,e,1\n")
    rows = load_events(str(path), columns=["user", "item", "ts"])
    assert rows == [("u2", "e", 1.0), ("u2", "b", 3.0), ("u1", "c", 3.0), ("u1", "a", 5.0), ("u3", "d", 5.0)]
    assert load_events(str(path), columns=["user", "item", "ts"], limit=2) == rows[:2]


def test_catalog_csv_gives_one_attribute_per_value_of_a_multi_valued_column():
    text = "id,brand,tags\n1,acme,red|big\n2,zeta,red\n3,,\n"
    catalog = read_catalog_csv(io.StringIO(text), ["id", "brand", "tags"])
    # "tags" holds a |-separated cell somewhere: every item's tags are per-value attributes, even a single one
    assert catalog == {"1": {"brand": "acme", "tags:red": "1", "tags:big": "1"},
                       "2": {"brand": "zeta", "tags:red": "1"}, "3": {}}


def test_catalog_csv_without_header_takes_column_indexes():
    catalog = read_catalog_csv(io.StringIO("7;c1\n8;c2\n"), ["0", "1"], delimiter=";", header=False)
    assert catalog == {"7": {"1": "c1"}, "8": {"1": "c2"}}
    with pytest.raises(DatasetError):
        read_catalog_csv(io.StringIO("a\n"), ["a"])


def test_built_in_catalogs_of_the_shared_sets(data_root):
    movies = load_catalog("movielens", data_root)
    assert movies["1"] == {f"genre:{name}": "1" for name in ("Adventure", "Animation", "Children", "Comedy", "Fantasy")}
    assert not any("genre:(no genres listed)" in attributes for attributes in movies.values())
    categories = load_catalog("diginetica", data_root)
    assert len(categories) == 7_139 and len({attributes["category"] for attributes in categories.values()}) == 560
    with pytest.raises(DatasetError, match="no built-in catalog"):
        load_catalog("yoochoose", data_root)
