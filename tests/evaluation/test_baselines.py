from streamer.evaluation.baselines import CooccurrenceAttributeModel, CooccurrenceModel, PopularityModel


def test_popularity_ranks_most_frequent_seen_so_far_query_excluded():
    model = PopularityModel()
    # counts a 2, b 3, c 2, d 1; the a/c tie goes to a (seen first)
    model.learn([("u", "a", 0), ("u", "b", 1), ("v", "c", 2), ("v", "b", 3), ("w", "a", 4), ("w", "c", 5),
                 ("w", "b", 6), ("w", "d", 7)])
    assert model.rank(["b", "a", "unseen"], k=2) == [["a", "c"], ["b", "c"], ["b", "a"]]
    model.learn([("x", "d", 8), ("x", "d", 9), ("x", "d", 10)])  # d now 4: counts keep growing
    assert model.rank(["b"], k=2) == [["d", "a"]]


def test_cooccurrence_counts_within_three_positions_both_directions():
    model = CooccurrenceModel()
    # one session p q r s t: p pairs with q, r, s (within 3 positions) but not t
    model.learn([("u", item, index) for index, item in enumerate("pqrst")])
    assert model.rank(["p"], k=10) == [["q", "r", "s"]]
    assert model.rank(["t"], k=10) == [["q", "r", "s"]]  # both directions
    assert model.rank(["nope"], k=10) == [None]


def test_cooccurrence_ranks_by_count_and_updates_as_it_learns():
    model = CooccurrenceModel()
    model.learn([("u", "a", 0), ("u", "b", 1), ("v", "a", 2), ("v", "c", 3), ("w", "a", 4), ("w", "c", 5)])
    assert model.rank(["a"], k=1) == [["c"]]  # c 2, b 1
    model.learn([("x", "a", 6), ("x", "b", 7), ("y", "b", 8), ("y", "a", 9)])
    assert model.rank(["a"], k=2) == [["b", "c"]]  # b 3, c 2


def test_cooccurrence_sessions_split_after_thirty_minutes_and_continue_across_calls():
    model = CooccurrenceModel()
    model.learn([("u", "a", 0), ("u", "b", 4000)])  # gap 4000 s > 1800: two sessions, no pair
    assert model.rank(["a"], k=10) == [[]]
    model.learn([("u", "c", 4100)])  # same session as b, learned in a later call
    assert model.rank(["b", "c"], k=10) == [["c"], ["b"]]


def test_cooccurrence_ignores_an_item_paired_with_itself():
    model = CooccurrenceModel()
    model.learn([("u", "a", 0), ("u", "a", 1), ("u", "b", 2)])
    assert model.rank(["a", "b"], k=10) == [["b"], ["a"]]
    assert model.counts["a"]["b"] == 2  # both a positions are within 3 of b


def test_cooc_attr_fills_empty_slots_with_frequent_items_sharing_an_attribute():
    model = CooccurrenceAttributeModel()
    model.catalog([{"op": "upsert", "item": item, "attrs": attrs} for item, attrs in [
        ("a", {"genre:x": "1"}), ("b", {"genre:x": "1"}), ("c", {"genre:y": "1"}), ("d", {"genre:y": "1", "genre:x": "1"}),
        ("e", {"genre:x": "1"}), ("n", {"genre:x": "1"})]])  # n is announced, never seen: not "frequent so far"
    # sessions: a b; then singles d d d, e, c c (no pairs); a co-occurs with b only
    model.learn([("u", "a", 0), ("u", "b", 1), ("v", "d", 10), ("w", "d", 5000), ("x", "d", 9000),
                 ("y", "e", 12000), ("z", "c", 15000), ("q", "c", 20000)])
    # a: cooc [b], then items sharing genre:x by count (d 3, e 1; b taken; a itself excluded; n unseen)
    assert model.rank(["a"], k=3) == [["b", "d", "e"]]
    # c (genre:y) has no co-occurrence: d is the only other genre:y item seen
    assert model.rank(["c", "unseen"], k=3) == [["d"], None]
    plain = CooccurrenceModel()
    plain.learn([("u", "a", 0), ("u", "b", 1)])
    assert plain.rank(["a"], k=3) == [["b"]]  # without the catalog there is nothing to fill with
