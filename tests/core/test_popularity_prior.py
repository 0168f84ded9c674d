"""The most_similar prior counts events decayed by ``popularity_half_life`` (event time), not all-time counts."""

import numpy as np

from streamer import Trainer
from streamer.core.persistence import restore_state, trainer_state
from streamer.core.similarity import popularity_counts

HOUR = 3600.0


def _events() -> list[tuple[str, str, float]]:
    """'classic' is clicked 10 times in the first hours, 'fresh' 3 times a week later; 'query' sits in between."""
    events = [(f"early{index}", item, index * HOUR + offset)
              for index in range(10) for offset, item in enumerate(("query", "classic"))]
    week = 7 * 24 * HOUR
    events += [(f"late{index}", item, week + index * HOUR + offset)
               for index in range(3) for offset, item in enumerate(("query", "fresh"))]
    return events


def _prior_only(**settings) -> Trainer:
    # every event moves the watermark ("now" of the decay) in this short stream
    trainer = Trainer(vector_size=8, seed=1, dot_weight=0.0, cosine_weight=0.0, watermark_quorum=1, **settings)
    trainer.learn(_events())
    return trainer


def test_prior_prefers_what_is_popular_now():
    decayed = _prior_only(popularity_half_life=24 * HOUR)
    cumulative = _prior_only(popularity_half_life=None)
    assert [item for item, _ in decayed.most_similar("query", 2)] == ["fresh", "classic"]
    assert [item for item, _ in cumulative.most_similar("query", 2)] == ["classic", "fresh"]


def test_decayed_count_is_the_sum_of_halved_events():
    half_life = 24 * HOUR
    trainer = _prior_only(popularity_half_life=half_life)
    now = trainer.watermark
    rows = np.array([trainer._items.rows[item] for item in ("classic", "fresh")])
    expected = [sum(0.5 ** ((now - ts) / half_life) for _, item, ts in _events() if item == name)
                for name in ("classic", "fresh")]
    assert np.allclose(popularity_counts(trainer._items.arrays, rows, half_life, now), expected, rtol=1e-9)
    assert np.array_equal(popularity_counts(trainer._items.arrays, rows, None, now), [10, 3])


def test_checkpoint_without_decayed_counts_keeps_the_cumulative_prior():
    trainer = _prior_only()
    meta, arrays = trainer_state(trainer)
    del arrays["items.recent"]
    del meta["settings"]["popularity_half_life"]
    older = Trainer.__new__(Trainer)
    restore_state(older, meta, dict(arrays))
    assert older.settings.popularity_half_life is None
    assert np.array_equal(older._items.arrays.recent, trainer._items.arrays.counts.astype(np.float64))
    assert [item for item, _ in older.most_similar("query", 2)] == ["classic", "fresh"]
