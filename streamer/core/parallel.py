"""Several workers: Hogwild SGNS updates on all cores, with the stateful bookkeeping kept serial.

``workers > 1`` splits each compiled call into blocks. For a block, the serial loop of
:mod:`streamer.core.learning` (``record_events``) advances sessions, counts, the noise tree, new-item
initialisation and the replay buffer as with one worker, but only records the pairs it would train in a
:class:`WorkArrays` and reserves one block of negatives per event. ``draw_work`` then draws those
negatives from the noise tree in ``workers`` chunks in parallel, chunk ``c`` from its own random stream
``1 + c`` (stream 0 is the serial loop's), so the O(log V) draws are off the serial path; ``apply_work``
trains the recorded pairs with ``train_pair`` (the same single SGNS step) in ``workers`` contiguous
chunks run in parallel by numba (``prange``, no GIL), lock-free as word2vec and gensim do ("Hogwild").

What differs from one worker, by design:
- two chunks may update the same popular row at once; a lost or mixed update of a vector, an AdaGrad
  accumulator or a "changed" mark is the accepted Hogwild trade-off (rare, and harmless to SGD);
- a new item's neighbour initialisation reads the vectors as they were before the pending block is
  applied (at most one block stale);
- negatives are drawn from the noise distribution as it stands at the end of their block (counts at most
  one block newer than with one worker), from the per-chunk streams;
- so the vectors depend on the thread timing and on ``batch_size``: results are not bit-reproducible,
  while the bookkeeping (event counts, items, sessions, counts, noise tree, replay buffer) is.
"""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np

from streamer.core.learning import WORK_BLOCKS, WORK_PAIRS, record_events, replay_pairs
from streamer.core.sgns import draw_negatives, train_pair

__all__ = ["WorkArrays", "new_work", "draw_work", "apply_work", "rng_streams", "learn_parallel", "replay_parallel", "BLOCK_PAIRS", "use_threads"]

WorkArrays = namedtuple("WorkArrays", ["pairs", "negatives", "counters", "weights"])

BLOCK_PAIRS = 16_384  # pairs recorded per block: large enough to amortise a parallel launch (~10 us)


def new_work(hyper, block_pairs: int = BLOCK_PAIRS) -> WorkArrays:
    """Buffers for one block: (first, second, negatives block) per pair, the drawn negatives, and the weights of
    each pair's two updates (first -> second, second -> first)."""
    room = block_pairs + hyper.window * (1 + hyper.replay_passes)
    return WorkArrays(np.zeros((room, 3), np.int64), np.zeros((room, hyper.negative), np.int64), np.zeros(2, np.int64),
                      np.ones((room, 2), np.float32))


def rng_streams(workers: int) -> int:
    """Random streams a trainer keeps: the serial loop's, plus one per parallel chunk with several workers."""
    return 1 if workers <= 1 else workers + 1


def use_threads(workers: int) -> int:
    """Run this thread's numba parallel sections on ``workers`` threads (at most NUMBA_NUM_THREADS, the size of
    numba's pool, fixed at import); returns the count. Set per calling thread, so called on every learn."""
    threads = max(1, min(int(workers), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads


@numba.njit(cache=True, nogil=True, parallel=True)
def draw_work(items, work, rng, chunks):
    """Fill every reserved block of negatives from the noise tree, in ``chunks`` slices run in parallel; slice
    ``c`` draws from random stream ``1 + c``, so the draws depend only on the seed, the events and ``chunks``."""
    blocks = work.counters[WORK_BLOCKS]
    for chunk in numba.prange(chunks):
        stream = rng[1 + chunk:2 + chunk].copy()  # a private copy: no false sharing of the state's cache line
        for block in range(blocks * chunk // chunks, blocks * (chunk + 1) // chunks):
            draw_negatives(items, work.negatives[block], stream, 0)
        rng[1 + chunk] = stream[0]
    return blocks


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)  # fastmath: train_pair is inlined here
def apply_work(items, work, learning_rate, chunks):
    """Train every recorded pair, both directions with its weights, in ``chunks`` contiguous slices run in parallel."""
    count = work.counters[WORK_PAIRS]
    size = items.vectors_in.shape[1]
    for chunk in numba.prange(chunks):
        gradient = np.zeros(size, np.float32)
        for position in range(count * chunk // chunks, count * (chunk + 1) // chunks):
            first, second = work.pairs[position, 0], work.pairs[position, 1]
            negatives = work.negatives[work.pairs[position, 2]]
            train_pair(items, first, second, negatives, learning_rate, gradient, work.weights[position, 0])
            train_pair(items, second, first, negatives, learning_rate, gradient, work.weights[position, 1])
    return count


def learn_parallel(items, users, replay, hyper, rng, work, chunks, user_slots, item_rows, timestamps, outcome, sweep_at,
                   sweep_before) -> None:
    """``learn_events`` for several workers: record a block serially, train it in parallel, repeat."""
    use_threads(chunks)
    position, total = 0, user_slots.shape[0]
    while position < total:
        position = record_events(items, users, replay, hyper, rng, user_slots, item_rows, timestamps, outcome,
                                 sweep_at, sweep_before, position, work)
        draw_work(items, work, rng, chunks)
        apply_work(items, work, hyper.learning_rate, chunks)


def replay_parallel(items, replay, hyper, rng, work, chunks, max_pairs: int) -> int:
    """``replay_pairs`` for several workers: ``max_pairs`` draws from the buffer recorded serially (in blocks),
    trained in parallel. Returns the pairs trained (draws of released pairs are skipped, as with one worker)."""
    use_threads(chunks)
    done, remaining, room = 0, int(max_pairs), work.pairs.shape[0]
    gradient, negatives = np.zeros(0, np.float32), np.empty(0, np.int64)
    while remaining > 0:
        draws = min(room, remaining)
        work.counters[:] = 0
        done += int(replay_pairs(items, replay, hyper, draws, rng, 0, gradient, negatives, work))
        draw_work(items, work, rng, chunks)
        apply_work(items, work, hyper.learning_rate, chunks)
        remaining -= draws
    return done
