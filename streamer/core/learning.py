"""The per-event learning loop (numba): sessionize, count, initialise new items, form pairs, train, replay.

Everything that happens here depends only on the events and the state arrays, never on how the stream
was cut into calls: learning A then B equals learning A+B (same seed, one worker).
"""

from __future__ import annotations

from collections import namedtuple

import math

import numba
import numpy as np

from streamer.core.noise import noise_weight, set_weight
from streamer.core.random import next_below, next_unit
from streamer.core.sessions import EVENT_ACCEPTED, EVENT_LATE, open_session, push_ring
from streamer.core.sgns import ITEM_LIVE, ITEM_NEW, draw_negatives, initialise_row, train_pair

__all__ = ["Hyper", "ReplayArrays", "learn_events", "replay_pairs", "COUNTER_TOTAL", "COUNTER_PAIRS"]

Hyper = namedtuple(
    "Hyper",
    ["window", "negative", "alpha", "subsample", "learning_rate", "accum_initial", "session_gap",
     "max_session_length", "lateness", "replay_passes", "init_noise", "dynamic_window"],
)
ReplayArrays = namedtuple("ReplayArrays", ["pairs", "counters"])

COUNTER_TOTAL = 0  # sum of all item counts (for subsampling)
COUNTER_FILL = 1  # replay buffer entries in use
COUNTER_NEXT = 2  # next replay write position
COUNTER_PAIRS = 3  # pairs trained from events
COUNTER_REPLAYED = 4  # pairs trained again from the replay buffer
COUNTER_SIZE = 5


@numba.njit(cache=True, nogil=True)
def _keep(items, row, subsample, total, rng, slot):
    """word2vec's subsampling of frequent items, from running counts."""
    if subsample <= 0.0:
        return True
    frequency = items.counts[row] / total
    threshold = subsample
    keep = (math.sqrt(frequency / threshold) + 1.0) * threshold / frequency
    return keep >= 1.0 or next_unit(rng, slot) < keep


@numba.njit(cache=True, nogil=True)
def _remember(replay, first, second):
    pairs, counters = replay.pairs, replay.counters
    capacity = pairs.shape[0]
    if capacity == 0:
        return
    position = counters[COUNTER_NEXT]
    pairs[position, 0] = first
    pairs[position, 1] = second
    counters[COUNTER_NEXT] = (position + 1) % capacity
    if counters[COUNTER_FILL] < capacity:
        counters[COUNTER_FILL] += 1


@numba.njit(cache=True, nogil=True)
def replay_pairs(items, replay, hyper, how_many, rng, slot, gradient, negatives):
    """Train ``how_many`` pairs drawn uniformly from the replay buffer, both directions."""
    fill = replay.counters[COUNTER_FILL]
    if fill == 0:
        return 0
    done = 0
    for _ in range(how_many):
        position = next_below(rng, slot, fill)
        first, second = replay.pairs[position, 0], replay.pairs[position, 1]
        if first < 0 or second < 0 or items.status[first] != ITEM_LIVE or items.status[second] != ITEM_LIVE:
            continue
        draw_negatives(items, negatives, rng, slot)
        train_pair(items, first, second, negatives, hyper.learning_rate, gradient)
        train_pair(items, second, first, negatives, hyper.learning_rate, gradient)
        done += 1
    replay.counters[COUNTER_REPLAYED] += done
    return done


@numba.njit(cache=True, nogil=True)
def _count(items, replay, row, ts, alpha):
    items.counts[row] += 1
    replay.counters[COUNTER_TOTAL] += 1
    if ts > items.last_seen[row]:
        items.last_seen[row] = ts
    set_weight(items.noise_tree, items.noise_weights, row, noise_weight(items.counts[row], alpha))


@numba.njit(cache=True, nogil=True)
def _train_window(items, users, replay, hyper, user, row, rng, slot, gradient, negatives):
    """Pair ``row`` with up to ``window`` previous items of the open session, both directions."""
    ring = users.ring[user]
    reach = users.ring_size[user]
    if hyper.dynamic_window and hyper.window > 1:
        reach = min(reach, 1 + next_below(rng, slot, hyper.window))
    made = 0
    drawn = False
    for position in range(reach):
        other = ring[position]
        if other < 0 or other == row or items.status[other] != ITEM_LIVE:
            continue
        if not drawn:
            draw_negatives(items, negatives, rng, slot)
            drawn = True
        train_pair(items, row, other, negatives, hyper.learning_rate, gradient)
        train_pair(items, other, row, negatives, hyper.learning_rate, gradient)
        _remember(replay, row, other)
        made += 1
    replay.counters[COUNTER_PAIRS] += made
    return made


@numba.njit(cache=True, nogil=True)
def learn_events(items, users, replay, hyper, rng, user_slots, item_rows, timestamps, outcome):
    """Learn events in order; ``outcome[e]`` is EVENT_ACCEPTED or EVENT_LATE. Returns accepted count."""
    gradient = np.zeros(items.vectors_in.shape[1], np.float32)
    negatives = np.empty(hyper.negative, np.int64)
    accepted = 0
    slot = 0
    for event in range(user_slots.shape[0]):
        user, row, ts = user_slots[event], item_rows[event], timestamps[event]
        state = open_session(users, user, ts, hyper.session_gap, hyper.max_session_length, hyper.lateness)
        outcome[event] = state
        if state == EVENT_LATE:
            continue
        accepted += 1
        _count(items, replay, row, ts, hyper.alpha)
        if items.status[row] == ITEM_NEW:
            initialise_row(items, row, users.ring[user], users.ring_size[user], hyper.init_noise,
                           hyper.accum_initial, rng, slot)
        if users.ring_size[user] > 0 and users.ring[user, 0] == row:
            continue  # immediate repeat: no pairs
        made = 0
        if _keep(items, row, hyper.subsample, replay.counters[COUNTER_TOTAL], rng, slot):
            made = _train_window(items, users, replay, hyper, user, row, rng, slot, gradient, negatives)
        push_ring(users, user, row)  # a subsampled item forms no pairs but stays part of the session
        if hyper.replay_passes > 0 and made > 0:
            replay_pairs(items, replay, hyper, made * hyper.replay_passes, rng, slot, gradient, negatives)
    return accepted
