"""The per-event learning loop (numba): sessionize, count, initialise new items, form pairs, train, replay.

Everything that happens here depends only on the events and the state arrays, never on how the stream
was cut into calls: learning A then B equals learning A+B (same seed, one worker).

Every step takes a ``work`` argument. ``work=None`` (one worker) trains each pair at once with
``train_pair``: numba prunes the ``work is None`` branches at compile time, so this is the plain serial
loop. With a :class:`streamer.core.parallel.WorkArrays` (several workers) the same loop does all the
stateful, order-dependent bookkeeping (sessions, counts, noise tree, new-item initialisation, replay
draws) but only *records* the pairs and reserves a block of negatives per event; ``parallel.draw_work``
then draws the negatives and ``parallel`` trains the pairs on the other cores (see :mod:`streamer.core.parallel`).

Compiled with ``cache=True``: numba keys a cached kernel on its own file only, so a change to an inlined
callee in :mod:`streamer.core.sgns` (``train_pair``'s dirty bits: output rows get ``DIRTY_OUTPUT_ROW``)
must come with a change here for existing caches to be rebuilt.
"""

from __future__ import annotations

# train_pair's dirty bits include DIRTY_INDEX (the neighbour index's bit) since issue 12: see above on the cache.
# blend_row (an announced item's first event, issue 14) is a callee in sgns too: see above on the cache.

from collections import namedtuple

import math

import numba
import numpy as np

from streamer.core.noise import alias_sample_many, noise_weight, set_weight
from streamer.core.random import next_below, next_unit
from streamer.core.sessions import EVENT_ACCEPTED, EVENT_LATE, open_session, push_ring, sweeps_due
from streamer.core.sgns import DIRTY_STATE, ITEM_LIVE, ITEM_NEW, blend_row, draw_negatives, initialise_row, pair_scratch, train_pair

__all__ = ["Hyper", "ReplayArrays", "learn_events", "record_events", "replay_pairs", "replay_draws", "COUNTER_TOTAL", "COUNTER_PAIRS",
           "WORK_PAIRS", "WORK_BLOCKS"]

Hyper = namedtuple(
    "Hyper",
    ["window", "negative", "alpha", "subsample", "learning_rate", "accum_initial", "session_gap",
     "max_session_length", "lateness", "replay_passes", "init_noise", "dynamic_window", "backward_weight",
     "distance_power", "popularity_half_life"],
)
ReplayArrays = namedtuple("ReplayArrays", ["pairs", "counters"])

COUNTER_TOTAL = 0  # sum of all item counts (for subsampling)
COUNTER_FILL = 1  # replay buffer entries in use
COUNTER_NEXT = 2  # next replay write position
COUNTER_PAIRS = 3  # pairs trained from events
COUNTER_REPLAYED = 4  # pairs trained again from the replay buffer
COUNTER_SIZE = 5

WORK_PAIRS = 0  # pairs recorded in a WorkArrays
WORK_BLOCKS = 1  # negative draws recorded in a WorkArrays


@numba.njit(cache=True, nogil=True)
def _draw(items, negatives, rng, slot, work):
    """Draw the negatives of one event (or one replayed pair) into ``negatives``; with a work buffer only reserve
    a new block, filled later by ``parallel.draw_work``."""
    if work is None:
        draw_negatives(items, negatives, rng, slot)
        return 0
    block = work.counters[WORK_BLOCKS]
    work.counters[WORK_BLOCKS] = block + 1
    return block


@numba.njit(cache=True, nogil=True, fastmath=True)
def _pair(items, later, earlier, negatives, learning_rate, gradient, work, block, weight, backward_weight):
    """Train a pair both directions now, or record it (with its negatives' block and weights). Compiled with
    fastmath because ``train_pair`` is inlined here.

    ``earlier`` -> ``later`` (the earlier item's input predicts the later item's output, the direction a
    next-item query asks) weighs ``weight``; ``later`` -> ``earlier`` weighs ``weight * backward_weight``."""
    backward = weight * backward_weight
    if work is None:
        train_pair(items, later, earlier, negatives, learning_rate, gradient, backward)
        train_pair(items, earlier, later, negatives, learning_rate, gradient, weight)
    else:
        position = work.counters[WORK_PAIRS]
        work.counters[WORK_PAIRS] = position + 1
        work.pairs[position, 0] = later
        work.pairs[position, 1] = earlier
        work.pairs[position, 2] = block
        work.weights[position, 0] = backward
        work.weights[position, 1] = weight


@numba.njit(cache=True, nogil=True)
def _distance_weight(distance, power):
    """Weight of a pair ``distance`` positions apart in its session: distance ** -power (GloVe's 1/d for 1)."""
    if power == 0.0:
        return 1.0
    if power == 1.0:
        return 1.0 / distance
    return distance ** -power


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
def replay_pairs(items, replay, hyper, how_many, rng, slot, gradient, negatives, work=None, table=None):
    """Train ``how_many`` pairs drawn uniformly from the replay buffer, both directions (full weight forward,
    ``backward_weight`` backward: the buffer already holds pairs in proportion to their distance weight);
    counted in ``COUNTER_REPLAYED``. Negatives come from the noise tree, or with ``table`` (owed replay paid
    in spare time) from that alias table of the same distribution (:func:`streamer.core.noise.alias_build`)."""
    done = replay_draws(items, replay, hyper, how_many, rng, slot, gradient, negatives, work, table)
    replay.counters[COUNTER_REPLAYED] += done
    return done


@numba.njit(cache=True, nogil=True)
def replay_draws(items, replay, hyper, how_many, rng, slot, gradient, negatives, work=None, table=None):
    """``replay_pairs`` without the count (several threads draw at once: ``parallel.replay_threads``)."""
    fill = replay.counters[COUNTER_FILL]
    if fill == 0:
        return 0
    done = 0
    pairs, status = replay.pairs, items.status
    for _ in range(how_many):
        position = next_below(rng, slot, fill)
        first, second = pairs[position, 0], pairs[position, 1]
        if first < 0 or second < 0 or status[first] != ITEM_LIVE or status[second] != ITEM_LIVE:
            continue
        block = 0
        if table is None:
            block = _draw(items, negatives, rng, slot, work)
        else:
            alias_sample_many(table, negatives, rng, slot)
        _pair(items, first, second, negatives, hyper.learning_rate, gradient, work, block, 1.0, hyper.backward_weight)
        done += 1
    return done


@numba.njit(cache=True, nogil=True)
def _count(items, replay, row, ts, alpha, half_life):
    """Count an event of ``row``: cumulative count (noise distribution), count decayed by ``half_life`` seconds
    of event time (``recent``, as of ``last_seen``; inf = no decay), last seen time."""
    counts, last_seen, recent = items.counts, items.last_seen, items.recent
    counts[row] += 1
    replay.counters[COUNTER_TOTAL] += 1
    if ts > last_seen[row]:
        recent[row] *= 0.5 ** ((ts - last_seen[row]) / half_life)
        last_seen[row] = ts
    recent[row] += 1.0
    items.dirty[row] |= DIRTY_STATE  # counts and noise weight changed even when no pair is trained
    set_weight(items.noise_tree, items.noise_weights, row, noise_weight(counts[row], alpha))


@numba.njit(cache=True, nogil=True)
def _train_window(items, users, replay, hyper, user, row, rng, slot, gradient, negatives, work):
    """Pair ``row`` with up to ``window`` previous items of the open session, both directions, each pair
    weighted by its distance (``distance_power``) and direction (``backward_weight``)."""
    ring, status = users.ring, items.status  # arrays taken out once (each access costs a reference count)
    reach = users.ring_size[user]
    if hyper.dynamic_window and hyper.window > 1:
        reach = min(reach, 1 + next_below(rng, slot, hyper.window))
    made = 0
    drawn = False
    block = 0
    for position in range(reach):
        other = ring[user, position]
        if other < 0 or other == row or status[other] != ITEM_LIVE:
            continue
        if not drawn:
            block = _draw(items, negatives, rng, slot, work)
            drawn = True
        weight = _distance_weight(position + 1.0, hyper.distance_power)
        _pair(items, row, other, negatives, hyper.learning_rate, gradient, work, block, weight, hyper.backward_weight)
        if weight >= 1.0 or next_unit(rng, slot) < weight:
            _remember(replay, row, other)  # the buffer keeps pairs in proportion to their weight
        made += 1
    replay.counters[COUNTER_PAIRS] += made
    return made


@numba.njit(cache=True, nogil=True)
def _learn_event(items, users, replay, hyper, rng, user, row, ts, gradient, negatives, work):
    """One event: EVENT_ACCEPTED or EVENT_LATE."""
    slot = 0
    state = open_session(users, user, ts, hyper.session_gap, hyper.max_session_length, hyper.lateness)
    if state == EVENT_LATE:
        return state
    _count(items, replay, row, ts, hyper.alpha, hyper.popularity_half_life)
    if items.status[row] == ITEM_NEW:
        initialise_row(items, row, users.ring[user], users.ring_size[user], hyper.init_noise,
                       hyper.accum_initial, rng, slot)
    elif items.counts[row] == 1:  # first event of an item the catalog announced: its prior meets the context
        blend_row(items, row, users.ring[user], users.ring_size[user], hyper.init_noise, rng, slot)
    if users.ring_size[user] > 0 and users.ring[user, 0] == row:
        return state  # immediate repeat: no pairs
    made = 0
    if _keep(items, row, hyper.subsample, replay.counters[COUNTER_TOTAL], rng, slot):
        made = _train_window(items, users, replay, hyper, user, row, rng, slot, gradient, negatives, work)
    push_ring(users, user, row)  # a subsampled item forms no pairs but stays part of the session
    if hyper.replay_passes > 0 and made > 0:
        replay_pairs(items, replay, hyper, made * hyper.replay_passes, rng, slot, gradient, negatives, work)
    return state


@numba.njit(cache=True, nogil=True)
def learn_events(items, users, replay, hyper, rng, user_slots, item_rows, timestamps, outcome, sweep_at, sweep_before):
    """Learn (and train) events in order; ``outcome[e]`` is EVENT_ACCEPTED or EVENT_LATE. Before event
    ``sweep_at[i]`` (or after the last event, for larger indices) the idle users' sessions older than
    ``sweep_before[i]`` are swept (event-time housekeeping, see ``sessions.sweep_users``). Returns accepted count."""
    gradient = pair_scratch(items.vectors_in.shape[1], hyper.negative)
    negatives = np.empty(hyper.negative, np.int64)
    accepted, swept = 0, 0
    for event in range(user_slots.shape[0]):
        swept = sweeps_due(users, sweep_at, sweep_before, swept, event)
        outcome[event] = _learn_event(items, users, replay, hyper, rng, user_slots[event], item_rows[event],
                                      timestamps[event], gradient, negatives, None)
        if outcome[event] == EVENT_ACCEPTED:
            accepted += 1
    sweeps_due(users, sweep_at, sweep_before, swept, np.iinfo(np.int64).max)
    return accepted


@numba.njit(cache=True, nogil=True)
def record_events(items, users, replay, hyper, rng, user_slots, item_rows, timestamps, outcome, sweep_at, sweep_before,
                  start, work):
    """Like ``learn_events`` from event ``start``, but record the pairs into ``work`` (emptied first) instead of
    training them; stops before an event that might not fit. Returns the index of the next event to record."""
    work.counters[:] = 0
    pairs_per_event = hyper.window * (1 + hyper.replay_passes)
    pair_room = work.pairs.shape[0] - pairs_per_event
    block_room = work.negatives.shape[0] - (1 + hyper.window * hyper.replay_passes)
    gradient = np.zeros(0, np.float32)
    negatives = np.empty(0, np.int64)
    swept = np.searchsorted(sweep_at, start)  # the sweeps before ``start`` ran in earlier calls
    event = start
    while event < user_slots.shape[0] and work.counters[WORK_PAIRS] <= pair_room and work.counters[WORK_BLOCKS] <= block_room:
        swept = sweeps_due(users, sweep_at, sweep_before, swept, event)
        outcome[event] = _learn_event(items, users, replay, hyper, rng, user_slots[event], item_rows[event],
                                      timestamps[event], gradient, negatives, work)
        event += 1
    if event == user_slots.shape[0]:
        sweeps_due(users, sweep_at, sweep_before, swept, np.iinfo(np.int64).max)
    return event
