import random

import numpy as np
import pytest

from streamer.evaluation.baselines import CooccurrenceModel
from streamer.evaluation.protocol import SessionTracker, catalog_upserts, evaluate, rank_by_cosine, split_events
from tests.evaluation.tiny_log import TINY_LOG


def pairs_of(split):
    return [[(query.source, query.target, query.new) for query in queries] for queries in split.queries]


def test_time_split_into_warmup_and_equal_slices():
    split = split_events(TINY_LOG, slices=2)
    assert (split.t0, split.t1, split.cut) == (0.0, 10000.0, 8000.0)
    assert len(split.warmup) == 8
    assert [ts for _, _, ts in split.slices[0]] == [8100, 8200, 8300, 8400, 8500]
    # the last event (ts = t1) belongs to the last slice
    assert [ts for _, _, ts in split.slices[1]] == [9000, 9100, 9150, 9500, 9600, 10000]


def test_events_are_sorted_stably_by_ts():
    shuffled = list(reversed(TINY_LOG))
    split = split_events(shuffled, slices=2)
    assert [event[2] for event in split.warmup + split.slices[0] + split.slices[1]] == sorted(e[2] for e in TINY_LOG)
    same_time = [("k", "p", 0), ("k", "q", 0), ("k", "r", 0), ("k", "s", 100)]
    assert pairs_of(split_events(same_time, slices=1)) == [[("r", "s", True)]]


def test_queries_previous_session_item_to_item_with_new_flag():
    split = split_events(TINY_LOG, slices=2)
    # the repeat b -> b gives no query; d/e/z were never in the warm-up so pairs ending there are "new";
    # e -> c is new=False although its source is new: the rule looks at the target only
    assert pairs_of(split) == [
        [("a", "b", False), ("b", "e", True), ("x", "a", False)],
        [("e", "c", False), ("a", "b", False), ("a", "e", True)],
    ]


def test_session_gap_is_thirty_minutes_exclusive():
    events = [("k", "a", 0), ("k", "b", 1800), ("k", "c", 3601), ("j", "d", 5000)]
    # b is 1800 s after a: same session (a gap must *exceed* 30 min); c is 1801 s after b: new session
    split = split_events(events, slices=1)
    tracker = SessionTracker(window=1)
    assert [tracker.push(*event) for event in events] == [(), ("a",), (), ()]
    assert pairs_of(split) == [[]]
    assert pairs_of(split_events(events[:2] + [("j", "z", 2000)], slices=1)) == [[("a", "b", True)]]


def test_session_tracker_window_keeps_recent_items():
    tracker = SessionTracker(window=3)
    assert [tracker.push("k", item, index) for index, item in enumerate("abcde")] == [
        (), ("a",), ("a", "b"), ("a", "b", "c"), ("b", "c", "d")]


def test_cooccurrence_on_tiny_log_known_answers():
    # Hand computation (K = 10). After the warm-up the co-occurrence counts are
    #   a: {b: 2, c: 1}   b: {a: 2, c: 2}   c: {b: 2, a: 1}   x: {}
    # slice 0, scored before learning it:
    #   a -> b : a ranks [b, c]      hit at rank 1, rr 1
    #   b -> e : b ranks [a, c]      miss (e unknown)                 new pair
    #   x -> a : x ranks []          miss (x is known: covered)
    # learning slice 0 (u4: a b b e, u5: x a) gives a: {b: 4, c: 1, e: 1, x: 1}, e: {b: 2, a: 1}
    # slice 1:
    #   e -> c : e ranks [b, a]      miss
    #   a -> b : a ranks [b, c, e, x] hit at rank 1, rr 1
    #   a -> e : same ranking        hit at rank 3, rr 1/3            new pair
    # HR = 3/6, MRR = (1 + 1 + 1/3) / 6, new HR = 1/2, coverage 6/6
    result = evaluate(CooccurrenceModel(), split_events(TINY_LOG, slices=2), k=10)
    assert [(chunk.pairs, chunk.hits, chunk.covered, chunk.new_pairs, chunk.new_hits) for chunk in result.slices] == [
        (3, 1, 3, 1, 0), (3, 2, 3, 1, 1)]
    assert result.hit_rate == pytest.approx(0.5)
    assert result.mean_reciprocal_rank == pytest.approx((1 + 1 + 1 / 3) / 6)
    assert result.new_hit_rate == pytest.approx(0.5)
    assert result.coverage == pytest.approx(1.0)
    assert [chunk.hit_rate for chunk in result.slices] == pytest.approx([1 / 3, 2 / 3])


def test_cutoff_k_counts_only_the_top_k():
    # with K = 2 the a -> e pair (rank 3) is a miss: hits 1 + 1
    result = evaluate(CooccurrenceModel(), split_events(TINY_LOG, slices=2), k=2)
    assert result.hits == 2
    assert result.mean_reciprocal_rank == pytest.approx(2 / 6)


class RecordingModel:
    """Ranks the items it has learned in learning order; records every call."""

    name = "recording"

    def __init__(self, answer_none_for=()):
        self.calls, self.items, self.answer_none_for = [], [], set(answer_none_for)

    def learn(self, events):
        self.calls.append(("learn", [event[2] for event in events]))
        self.items = list(dict.fromkeys(self.items + [item for _, item, _ in events]))

    def rank(self, query_items, k):
        self.calls.append(("rank", list(query_items)))
        return [None if query in self.answer_none_for else [item for item in self.items if item != query][:k]
                for query in query_items]


def test_model_learns_each_slice_after_it_is_queried():
    model = RecordingModel()
    evaluate(model, split_events(TINY_LOG, slices=2))
    assert model.calls == [
        ("learn", [0, 10, 20, 100, 110, 200, 210, 7900]),
        ("rank", ["a", "b", "x"]),  # each distinct query item once per slice
        ("learn", [8100, 8200, 8300, 8400, 8500]),
        ("rank", ["e", "a"]),
        ("learn", [9000, 9100, 9150, 9500, 9600, 10000]),
    ]


def test_query_without_vector_is_a_miss_and_lowers_coverage():
    # RecordingModel ranks learned items in order: [a, b, c, x, ...] minus the query
    # slice 0: a->b hit (rank 1 of [b, c, x]), b->e miss, x has no vector; slice 1: e->c hit (rank 3 of
    # [a, b, c, ...]), a->b hit (rank 1), a->e hit (rank 4 of [b, c, x, e])
    result = evaluate(RecordingModel(answer_none_for={"x"}), split_events(TINY_LOG, slices=2))
    assert (result.pairs, result.covered, result.hits) == (6, 5, 4)
    assert result.coverage == pytest.approx(5 / 6)
    assert result.mean_reciprocal_rank == pytest.approx((1 + 1 / 3 + 1 + 1 / 4) / 6)


def test_rank_by_cosine_excludes_query_and_unknown_items():
    ids = ["a", "b", "c", "d"]
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    assert rank_by_cosine(ids, vectors, ["a", "zz", "d"], k=2) == [["b", "c"], None, ["c", "b"]]
    assert rank_by_cosine(ids, vectors, ["a"], k=10) == [["b", "c", "d"]]


def test_rank_by_cosine_batches_give_the_same_answer():
    generator = np.random.default_rng(3)
    ids = [f"i{index}" for index in range(50)]
    vectors = generator.normal(size=(50, 8)).astype(np.float32)
    queries = random.Random(3).choices(ids, k=30) + ["unknown"]
    assert rank_by_cosine(ids, vectors, queries, 5, batch_cells=50) == rank_by_cosine(ids, vectors, queries, 5)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit[0] @ unit.T
    scores[0] = -np.inf
    assert rank_by_cosine(ids, vectors, ["i0"], 5)[0] == [ids[index] for index in np.argsort(-scores)[:5]]


def test_slices_must_be_positive():
    from streamer.errors import StreamerError

    with pytest.raises(StreamerError):
        split_events(TINY_LOG, slices=0)


class CatalogRecordingModel(RecordingModel):
    def catalog(self, updates):
        self.calls.append(("catalog", [update["item"] for update in updates]))


def test_catalog_upserts_come_per_chunk_for_items_first_seen_in_it():
    split = split_events(TINY_LOG, slices=2)
    catalog = {item: {"kind": item.upper()} for item in "abcexz" if item != "c"}  # c is not catalogued
    upserts = catalog_upserts(split, catalog)
    assert [[update["item"] for update in chunk] for chunk in upserts] == [["a", "b", "x"], ["e"], ["z"]]
    assert upserts[1][0] == {"op": "upsert", "item": "e", "attrs": {"kind": "E"}}


def test_catalog_reaches_a_model_before_each_chunk_after_the_queries():
    split = split_events(TINY_LOG, slices=2)
    upserts = catalog_upserts(split, {item: {"kind": "k"} for item in "abcexz"})
    model = CatalogRecordingModel()
    result = evaluate(model, split, upserts=upserts)
    assert result.name == "recording+catalog"
    assert [call[0] for call in model.calls] == ["catalog", "learn", "rank", "catalog", "learn", "rank", "catalog", "learn"]
    assert model.calls[3] == ("catalog", ["e"]) and model.calls[6] == ("catalog", ["z"])
    plain = RecordingModel()  # a model without a catalog method ignores the upserts
    assert evaluate(plain, split, upserts=upserts).name == "recording"
