"""Training speed of ``Trainer.learn`` vs gensim 4 ``Word2Vec(sg=1)`` on the same pre-split sessions.

Same corpus, same hyperparameters (vector_size 64, window 5 drawn dynamically as word2vec does, negative 5,
sample 1e-3, one pass: the Trainer's replay is off because gensim makes no extra passes):
prints tokens/s of both and their ratio, for workers=1 (Trainer(workers=1) vs gensim workers=1) and
workers=2 (Trainer(workers=2): serial bookkeeping + parallel Hogwild SGNS, vs gensim workers=2), then the
peak RSS of a Trainer holding 1M items (measured in a child process).

    /tmp/venv/bin/python ops/bench_training.py [--tokens 1000000] [--items 50000] [--memory-items 1000000]

The Trainer's time includes its whole ``learn`` call (validation, id mapping, sessionization, pair
generation, SGNS); gensim's is its ``train`` call only (vocabulary built beforehand, not timed).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np

HYPER = dict(vector_size=64, window=5, negative=5)


def corpus(tokens: int, items: int, seed: int = 0) -> tuple[list[list[str]], list[tuple[str, str, float]]]:
    """Zipf-popular items in clustered sessions of 2..20 events; sessions + the same events as a stream."""
    random = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity /= popularity.sum()
    drawn = random.choice(items, size=tokens, p=popularity)
    sessions, events = [], []
    position, ts, session = 0, 0.0, 0
    while position < tokens:
        length = int(random.integers(2, 21))
        chunk = [f"item{item}" for item in drawn[position:position + length]]
        sessions.append(chunk)
        user = f"user{session}"
        for item in chunk:
            events.append((user, item, ts))
            ts += 1.0
        position += length
        session += 1
    return sessions, events


def time_trainer(events, workers: int = 1) -> float:
    from streamer import Trainer

    Trainer(**HYPER, workers=workers).learn(events[:1000])  # compile (cached) outside the timing
    # gensim's settings, not the Trainer's defaults: one pass (no replay), sample 1e-3 and word2vec's
    # dynamic window (gensim shrink_windows=True), so both do the same pairs per token; flat, symmetric pair
    # weights (gensim's dynamic window is its only distance weighting)
    trainer = Trainer(**HYPER, subsample=1e-3, replay_passes=0, dynamic_window=True, distance_power=0.0,
                      backward_weight=1.0, workers=workers, seed=1)
    started = time.perf_counter()
    trainer.learn(events)
    return time.perf_counter() - started


def time_gensim(sessions, workers: int) -> float:
    from gensim.models import Word2Vec

    model = Word2Vec(sg=1, min_count=1, sample=1e-3, epochs=1, workers=workers, seed=1, **HYPER)
    model.build_vocab(sessions)
    started = time.perf_counter()
    model.train(sessions, total_examples=len(sessions), epochs=1)
    return time.perf_counter() - started


def memory_child(items: int) -> None:
    from streamer import Trainer

    trainer = Trainer(**HYPER, replay_passes=0)
    batch = 200_000
    for start in range(0, 2 * items, batch):
        trainer.learn((f"user{index // 4}", f"item{index // 2}", float(index)) for index in range(start, min(start + batch, 2 * items)))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{trainer.item_count} {peak_kib}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--memory-items", type=int, default=1_000_000, help="0 skips the memory measurement")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    sessions, events = corpus(args.tokens, args.items)
    print(f"corpus: {len(events)} tokens, {len(sessions)} sessions, {args.items} item ids; "
          f"vector_size 64, window 5 (dynamic), negative 5, sample 1e-3, one pass (Trainer replay_passes=0); "
          f"same corpus and settings on both sides, workers = threads on each side")
    for workers in (1, 2):
        ours = len(events) / time_trainer(events, workers)
        theirs = len(events) / time_gensim(sessions, workers)
        print(f"workers={workers}: streamer Trainer(workers={workers}).learn {ours:,.0f} tokens/s | "
              f"gensim Word2Vec(sg=1, workers={workers}) {theirs:,.0f} tokens/s | ratio {ours / theirs:.2f}")
    if args.memory_items:
        output = subprocess.run([sys.executable, __file__, "--memory-child", str(args.memory_items)],
                                check=True, capture_output=True, text=True).stdout.split()
        print(f"peak RSS with {int(output[0]):,} items (vector_size 64): {int(output[1]) / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
