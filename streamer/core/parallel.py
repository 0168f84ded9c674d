"""Several workers: Hogwild SGNS updates on all cores, with the stateful bookkeeping kept serial.

``workers > 1`` splits each compiled call into blocks. For a block, the serial loop of
:mod:`streamer.core.learning` (``record_events``) advances sessions, counts, the noise tree, new-item
initialisation and the replay buffer as with one worker, but only records the pairs it would train in a
:class:`WorkArrays` and reserves one block of negatives per event; the negatives are then drawn from the
noise tree (random stream 1; stream 0 is the bookkeeping's) and ``train_pair`` (the same single SGNS step)
trains the recorded pairs, lock-free as word2vec and gensim do ("Hogwild").

``learn_parallel`` pipelines the blocks over two work buffers: while one thread records and draws block
k+1, the other ``workers - 1`` threads train block k (one numba parallel region per block, no GIL). The
serial bookkeeping and the training of the previous block cost about the same, so with two workers both
cores stay busy; the last block is trained on all threads. Replay (``replay_threads``) needs no serial
bookkeeping (the noise tree and the buffer are only read): every thread draws its own pairs and negatives.

What differs from one worker, by design:
- two threads may update the same popular row at once; a lost or mixed update of a vector, an AdaGrad
  accumulator or a "changed" mark is the accepted Hogwild trade-off (rare, and harmless to SGD);
- a new item's neighbour initialisation reads the vectors while the previous block is being trained
  (at most two blocks stale, and possibly mid-update);
- negatives are drawn from the noise distribution as it stands at the end of their block (counts at most
  one block newer than with one worker), from their own random stream;
- so the vectors depend on the thread timing and on ``batch_size``: results are not bit-reproducible,
  while the bookkeeping (event counts, items, sessions, counts, noise tree, replay buffer) is.

Compiled with ``cache=True``: numba keys a cached kernel on its own file only, so a change to an inlined
callee in :mod:`streamer.core.sgns` (``train_pair``'s dirty bits: output rows get ``DIRTY_OUTPUT_ROW``)
must come with a change here for existing caches to be rebuilt.
"""

from __future__ import annotations

# train_pair's dirty bits include DIRTY_INDEX (the neighbour index's bit) since issue 12: see above on the cache.

from collections import namedtuple

import numba
import numpy as np

from streamer.core.learning import COUNTER_REPLAYED, WORK_BLOCKS, WORK_PAIRS, record_events, replay_draws
from streamer.core.random import next_u64
from streamer.core.sgns import draw_negatives, pair_scratch, train_pair

__all__ = ["WorkArrays", "new_work", "draw_work", "apply_work", "rng_streams", "learn_parallel", "replay_threads",
           "BLOCK_PAIRS", "DRAW_STREAM", "use_threads"]

WorkArrays = namedtuple("WorkArrays", ["pairs", "negatives", "counters", "weights"])

BLOCK_PAIRS = 16_384  # pairs recorded per block: large enough to amortise a parallel launch (~10 us)


def new_work(hyper, block_pairs: int = BLOCK_PAIRS) -> WorkArrays:
    """Buffers for one block: (first, second, negatives block) per pair, the drawn negatives, and the weights of
    each pair's two updates (first -> second, second -> first)."""
    room = block_pairs + hyper.window * (1 + hyper.replay_passes)
    return WorkArrays(np.zeros((room, 3), np.int64), np.zeros((room, hyper.negative), np.int64), np.zeros(2, np.int64),
                      np.ones((room, 2), np.float32))


def rng_streams(workers: int) -> int:
    """Random streams a trainer keeps: the serial loop's, and with several workers DRAW_STREAM's (and, unused,
    one more per worker beyond the first: the checkpoint layout of the earlier per-chunk draws)."""
    return 1 if workers <= 1 else workers + 1


def use_threads(workers: int) -> int:
    """Run this thread's numba parallel sections on ``workers`` threads (at most NUMBA_NUM_THREADS, the size of
    numba's pool, fixed at import); returns the count. Set per calling thread, so called on every learn."""
    threads = max(1, min(int(workers), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads


DRAW_STREAM = 1  # the random stream negatives are drawn from with several workers


@numba.njit(cache=True, nogil=True)
def draw_work(items, work, rng):
    """Fill every reserved block of negatives from the noise tree, from random stream DRAW_STREAM."""
    blocks = work.counters[WORK_BLOCKS]
    for block in range(blocks):
        draw_negatives(items, work.negatives[block], rng, DRAW_STREAM)
    return blocks


@numba.njit(cache=True, nogil=True, fastmath=True)  # fastmath: train_pair is inlined here
def _apply_slice(items, work, learning_rate, part, parts):
    """Train slice ``part`` of ``parts`` of the recorded pairs, both directions with their weights."""
    count = work.counters[WORK_PAIRS]
    gradient = pair_scratch(items.vectors_in.shape[1], work.negatives.shape[1])
    for position in range(count * part // parts, count * (part + 1) // parts):
        first, second = work.pairs[position, 0], work.pairs[position, 1]
        negatives = work.negatives[work.pairs[position, 2]]
        train_pair(items, first, second, negatives, learning_rate, gradient, work.weights[position, 0])
        train_pair(items, second, first, negatives, learning_rate, gradient, work.weights[position, 1])
    return count


@numba.njit(cache=True, nogil=True, parallel=True)
def apply_work(items, work, learning_rate, chunks):
    """Train every recorded pair in ``chunks`` contiguous slices run in parallel."""
    for chunk in numba.prange(chunks):
        _apply_slice(items, work, learning_rate, chunk, chunks)
    return work.counters[WORK_PAIRS]


@numba.njit(cache=True, nogil=True, parallel=True)
def _record_while_applying(items, users, replay, hyper, rng, fill, apply, tasks, user_slots, item_rows, timestamps,
                           outcome, sweep_at, sweep_before, position, cursor):
    """Task 0 records (and draws) the block from event ``position`` into ``fill`` and leaves the next event's
    index in ``cursor[0]``; tasks 1..tasks-1 train the previous block ``apply`` meanwhile, in slices."""
    for task in numba.prange(tasks):
        if task == 0:
            cursor[0] = record_events(items, users, replay, hyper, rng, user_slots, item_rows, timestamps, outcome,
                                      sweep_at, sweep_before, position, fill)
            draw_work(items, fill, rng)
        else:
            _apply_slice(items, apply, hyper.learning_rate, task - 1, tasks - 1)


def learn_parallel(items, users, replay, hyper, rng, works, chunks, user_slots, item_rows, timestamps, outcome, sweep_at,
                   sweep_before) -> None:
    """``learn_events`` for several workers, pipelined over the two buffers of ``works``: record block k+1 on one
    thread while the others train block k."""
    use_threads(chunks)
    fill, apply = works
    total, cursor = user_slots.shape[0], np.zeros(1, np.int64)
    position = record_events(items, users, replay, hyper, rng, user_slots, item_rows, timestamps, outcome, sweep_at,
                             sweep_before, 0, fill)
    draw_work(items, fill, rng)
    while True:
        fill, apply = apply, fill  # the block just recorded is trained next
        if position >= total:
            apply_work(items, apply, hyper.learning_rate, chunks)
            return
        _record_while_applying(items, users, replay, hyper, rng, fill, apply, chunks, user_slots, item_rows,
                               timestamps, outcome, sweep_at, sweep_before, position, cursor)
        position = int(cursor[0])


STREAM_STRIDE = 8  # uint64 slots between two replay parts' random streams: one cache line each, no false sharing
REPLAY_PART = 256  # replay draws per part (each part has its own random stream; the threads share the parts out)


@numba.njit(cache=True, nogil=True, parallel=True)
def _replay_parts(items, replay, hyper, rng, draws, part_size, table):
    """Part p makes draws [p * part_size, (p + 1) * part_size) with ``replay_draws`` (pairs, negatives and
    updates) from its own random stream, seeded from stream 0: nothing is recorded or drawn serially, and the
    draws do not depend on which thread runs which part."""
    parts = (draws + part_size - 1) // part_size
    streams = np.zeros(parts * STREAM_STRIDE, np.uint64)
    for part in range(parts):
        streams[part * STREAM_STRIDE] = next_u64(rng, 0)
    done = np.zeros(parts, np.int64)
    for part in numba.prange(parts):
        gradient = pair_scratch(items.vectors_in.shape[1], hyper.negative)
        negatives = np.empty(hyper.negative, np.int64)
        share = min(part_size, draws - part * part_size)
        done[part] = replay_draws(items, replay, hyper, share, streams, part * STREAM_STRIDE, gradient, negatives, None,
                                  table)
    total = done.sum()
    replay.counters[COUNTER_REPLAYED] += total
    return total


def replay_threads(items, replay, hyper, rng, threads: int, max_pairs: int, part_size: int = REPLAY_PART,
                   table=None) -> int:
    """``replay_pairs`` on ``threads`` threads (0 = all of numba's; Hogwild, as learning with several workers): ``max_pairs`` draws
    from the buffer in parts of ``part_size``, shared out between the threads (numba's static schedule: a core
    another process holds slows the whole call). Returns the pairs trained (draws of released pairs are skipped,
    as with one thread). The draws depend only on the state and ``part_size``; the vectors also on thread timing.
    ``table``: negatives from that alias table instead of the noise tree (see ``learning.replay_pairs``)."""
    use_threads(threads or numba.config.NUMBA_NUM_THREADS)
    return int(_replay_parts(items, replay, hyper, rng, int(max_pairs), int(part_size), table))
