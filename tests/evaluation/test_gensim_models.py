import sys

import numpy as np
import pytest

pytest.importorskip("gensim")

from streamer.evaluation.gensim_models import GensimModel, GensimUnavailable, session_sentences  # noqa: E402
from streamer.evaluation.protocol import SessionTracker, evaluate, split_events  # noqa: E402
from tests.evaluation.tiny_log import TINY_LOG  # noqa: E402

WARMUP = [(f"u{index}", item, index * 100 + position) for index in range(30)
          for position, item in enumerate(["a", "b", "c"] if index % 2 else ["d", "e", "f"])]


def test_session_sentences_fragments_and_whole_sessions():
    events = [("u", "a", 0), ("v", "x", 1), ("u", "b", 2), ("u", "c", 5000)]
    assert session_sentences(SessionTracker(), events) == [["a", "b"], ["x"], ["c"]]
    tracker, current = SessionTracker(), {}
    history = session_sentences(tracker, events[:2], current)
    history += session_sentences(tracker, [("u", "b", 2)], current)  # continues u's session of the first call
    assert history == [["a", "b"], ["x"]]


def test_static_learns_the_warmup_only_and_online_adds_new_items():
    static, online = GensimModel("static", seed=1), GensimModel("online", seed=1)
    for model in (static, online):
        model.learn(WARMUP)
        model.learn([("n", "a", 9000), ("n", "new", 9001)])
    assert static.rank(["new"], 3) == [None]
    assert online.rank(["new"], 3)[0] is not None and "new" in online.model.wv.key_to_index
    assert "new" not in static.model.wv.key_to_index


def test_retrain_trains_from_scratch_on_all_sessions():
    model = GensimModel("retrain", seed=1)
    model.learn(WARMUP)
    model.learn([("u1", "g", 150)])  # continues session u1 (a b c) from the first call
    assert ["a", "b", "c", "g"] in model.history
    assert "g" in model.model.wv.key_to_index


def test_same_seed_gives_same_vectors_and_results():
    first, second = GensimModel("online", seed=7), GensimModel("online", seed=7)
    split = split_events(WARMUP + TINY_LOG, slices=2)
    assert evaluate(first, split).hits == evaluate(second, split).hits
    assert np.array_equal(first.model.wv.vectors, second.model.wv.vectors)


def test_missing_gensim_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim.models", None)
    with pytest.raises(GensimUnavailable, match="pip install"):
        GensimModel("static")
