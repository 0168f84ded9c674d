"""Pair weights: adjacent items weigh more than distant ones, and the forward (earlier -> later) direction more
than the backward one; older checkpoints keep the flat, symmetric pairs they were trained with."""

import numpy as np
import pytest

from streamer import Trainer
from streamer.core.settings import TrainerSettings

CYCLE = 12


def _cycle_events(sessions: int = 300, length: int = 8, seed: int = 0) -> list[tuple[str, str, float]]:
    """Sessions walking a fixed cycle of items from a random start: item ``i`` is always followed by ``i + 1``."""
    random = np.random.default_rng(seed)
    events, ts = [], 0.0
    for session in range(sessions):
        start = int(random.integers(CYCLE))
        for step in range(length):
            events.append((f"user{session % 20}", f"i{(start + step) % CYCLE}", ts))
            ts += 5.0
        ts += 4000.0  # a new session each time
    return events


def _dot(trainer: Trainer, query: int, offset: int) -> float:
    """in[query] . out[query + offset] (offset > 0: a later item, < 0: an earlier one)."""
    arrays, rows = trainer._items.arrays, trainer._items.rows
    source, target = rows[f"i{query}"], rows[f"i{(query + offset) % CYCLE}"]
    return float(arrays.vectors_in[source] @ arrays.vectors_out[target])


def _mean_gap(trainer: Trainer, offset: int, other: int) -> float:
    return float(np.mean([_dot(trainer, query, offset) - _dot(trainer, query, other) for query in range(CYCLE)]))


@pytest.mark.parametrize("workers", [1, 2])
def test_backward_weight_makes_input_output_scores_directional(workers):
    settings = dict(vector_size=16, window=1, seed=3, replay_passes=0, workers=workers)
    directional = Trainer(backward_weight=0.2, **settings)
    symmetric = Trainer(backward_weight=1.0, **settings)
    for trainer in (directional, symmetric):
        trainer.learn(_cycle_events())
    # in[q] . out[next] - in[q] . out[previous]: clearly positive only when the backward update weighs less
    assert _mean_gap(directional, 1, -1) > 1.0
    assert abs(_mean_gap(symmetric, 1, -1)) < 0.5 * _mean_gap(directional, 1, -1)


@pytest.mark.parametrize("workers", [1, 2])
def test_distance_power_favours_adjacent_items(workers):
    settings = dict(vector_size=16, window=3, seed=3, replay_passes=0, backward_weight=1.0, workers=workers)
    weighted = Trainer(distance_power=2.0, **settings)
    flat = Trainer(distance_power=0.0, **settings)
    for trainer in (weighted, flat):
        trainer.learn(_cycle_events())
    # how much more the next item scores than the one three steps ahead (both are trained pairs)
    assert _mean_gap(weighted, 1, 3) > _mean_gap(flat, 1, 3) + 1.0


def test_distance_weighted_pairs_fill_the_replay_buffer_in_proportion():
    trainer = Trainer(vector_size=8, window=3, distance_power=1.0, replay_buffer=100_000, seed=5)
    trainer.learn(_cycle_events(sessions=400))
    pairs = trainer._replay.pairs[: int(trainer._replay.counters[1])]
    ids = trainer._items.ids
    distance = np.array([(int(ids[later][1:]) - int(ids[earlier][1:])) % CYCLE for later, earlier in pairs])
    shares = np.array([np.mean(distance == step) for step in (1, 2, 3)])
    expected = np.array([1.0, 1 / 2, 1 / 3]) * np.array([7, 6, 5])  # weight x pairs per 8-item session
    assert np.allclose(shares, expected / expected.sum(), atol=0.02)


def test_checkpoint_settings_without_the_weights_keep_flat_symmetric_pairs():
    older = {name: value for name, value in TrainerSettings().to_dict().items()
             if name not in ("distance_power", "backward_weight")}
    restored = TrainerSettings.from_dict(older)
    assert (restored.distance_power, restored.backward_weight) == (0.0, 1.0)
    assert TrainerSettings.from_dict(TrainerSettings().to_dict()) == TrainerSettings()
