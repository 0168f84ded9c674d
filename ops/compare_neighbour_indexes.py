"""usearch vs faiss-cpu vs voyager as the candidate source of ``most_similar``, on one trained model's vectors.

    python ops/compare_neighbour_indexes.py --checkpoint model.ckpt [--queries 200] [--candidates 64]
    python ops/compare_neighbour_indexes.py --items 100000    # trains a model first (ops/bench_neighbours.py)

For each library (one thread each): build time, query time, and recall@10 of the served ranking — the
index's ``candidates`` cosine neighbours of the served vector ∪ the ``popular`` most popular items,
re-scored with the full score — against the exact brute force over every item; then the cost of updating
2% of the items (moved vectors) and removing 1%, the cosine recall@``candidates`` after those changes, and
the memory the index added to the process (RSS growth while building, and what the library reports).
Bounded: one build per library, at most a few hundred queries. Figures are taken on whatever else the
machine is doing: run it twice.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


class Usearch:
    name = "usearch"

    def __init__(self, size: int, dtype: str = "f16"):
        from usearch.index import Index

        self.name = f"usearch {dtype}"
        self.index = Index(ndim=size, metric="cos", dtype=dtype, connectivity=16, expansion_add=64,
                           expansion_search=64)

    def add(self, keys, vectors):
        self.index.add(keys.astype(np.uint64), vectors, threads=1)

    def update(self, keys, vectors):
        self.index.remove(keys.astype(np.uint64))
        self.add(keys, vectors)

    def remove(self, keys):
        self.index.remove(keys.astype(np.uint64))

    def search(self, vectors, count):
        return np.asarray(self.index.search(vectors, count, threads=1).keys).astype(np.int64)

    def reported(self):
        return int(self.index.memory_usage)


class Voyager:
    def __init__(self, size: int, storage: str = "Float32"):
        import voyager

        self.name = f"voyager {storage}"
        self.index = voyager.Index(voyager.Space.Cosine, num_dimensions=size, M=16, ef_construction=64,
                                   storage_data_type=getattr(voyager.StorageDataType, storage))
        self.index.ef = 64

    def add(self, keys, vectors):
        self.index.add_items(vectors, ids=keys.tolist(), num_threads=1)

    def update(self, keys, vectors):
        for key in keys.tolist():
            self.index.mark_deleted(key)
        self.add(keys, vectors)  # an id marked deleted is re-added in place

    def remove(self, keys):
        for key in keys.tolist():
            self.index.mark_deleted(key)

    def search(self, vectors, count):
        keys, _ = self.index.query(vectors, k=count, num_threads=1, query_ef=64)
        return np.asarray(keys, np.int64)

    def reported(self):
        return None


class FaissHnsw:
    """faiss IndexHNSWFlat: no removal at all, so an update or removal means a rebuild."""

    name = "faiss HNSW (no remove: rebuild)"

    def __init__(self, size: int):
        import faiss

        faiss.omp_set_num_threads(1)
        self.faiss, self.size = faiss, size
        self.keys = np.zeros(0, np.int64)
        self.vectors = np.zeros((0, size), np.float32)
        self._new()

    def _new(self):
        self.index = self.faiss.IndexHNSWFlat(self.size, 16, self.faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction, self.index.hnsw.efSearch = 64, 64

    def add(self, keys, vectors):
        self.keys = np.concatenate([self.keys, keys])
        self.vectors = np.concatenate([self.vectors, _unit(vectors)])
        self.index.add(_unit(vectors))

    def _rebuild(self, keep):
        self.keys, self.vectors = self.keys[keep], self.vectors[keep]
        self._new()
        self.index.add(self.vectors)

    def update(self, keys, vectors):
        keep = ~np.isin(self.keys, keys)
        self._rebuild(keep)
        self.add(keys, vectors)

    def remove(self, keys):
        self._rebuild(~np.isin(self.keys, keys))

    def search(self, vectors, count):
        _, positions = self.index.search(_unit(vectors), count)
        return np.where(positions >= 0, self.keys[np.maximum(positions, 0)], -1)

    def reported(self):
        return None


class FaissIvf:
    """What streamer ships (streamer.core.neighbours.NeighbourIndex): faiss IndexIVFScalarQuantizer, fp16 codes,
    sqrt(n) k-means lists, 12 probed, a hash-table id map (O(1) removal)."""

    name = "faiss IVF-SQfp16 (shipped)"

    def __init__(self, size: int):
        from streamer.core.neighbours import NeighbourIndex

        self.index = NeighbourIndex(size, flat_limit=0)

    def add(self, keys, vectors):
        self.index.rebuild(keys, vectors)

    def update(self, keys, vectors):
        self.index.update(keys, vectors)

    def remove(self, keys):
        self.index.remove(keys)

    def search(self, vectors, count):
        return self.index.search(vectors, count)

    def reported(self):
        return self.index.memory_bytes


def _unit(vectors):
    return np.ascontiguousarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12),
                                np.float32)


def load_model(arguments):
    from streamer import Trainer

    if arguments.checkpoint:
        return Trainer.load(arguments.checkpoint)
    from bench_neighbours import trained_engine

    return trained_engine(arguments.items)


def served_ranking(trainer, queries, candidate_rows, k=10):
    """Top-k rows by the full score among ``candidate_rows`` (one array per query), the query excluded."""
    from streamer.core.similarity import score_candidates, top_k

    arrays, settings, watermark = trainer._items.arrays, trainer.settings, trainer.watermark
    result = []
    for query, candidates in zip(queries.tolist(), candidate_rows):
        candidates = np.unique(candidates[(candidates >= 0) & (candidates != query)])
        scores = score_candidates(arrays, np.array([query]), candidates, settings, watermark)[0]
        result.append(set(candidates[top_k(scores, k)].tolist()))
    return result


def measure(backend, rows, served, queries, exact, popular, candidates, changed, removed, exact_cosine_after):
    gc.collect()
    before = resident_bytes()
    began = time.perf_counter()
    backend.add(rows, served)
    build = time.perf_counter() - began
    grown = resident_bytes() - before
    query_vectors = served[np.searchsorted(rows, queries)]
    began = time.perf_counter()
    found = backend.search(query_vectors, candidates)
    search = (time.perf_counter() - began) / len(queries)
    ranking = served_ranking(TRAINER, queries, [np.concatenate([row, popular]) for row in found])
    recall = np.mean([len(ranking[i] & exact[i]) / 10 for i in range(len(queries))])
    cosine_only = served_ranking(TRAINER, queries, list(found))
    recall_no_popular = np.mean([len(cosine_only[i] & exact[i]) / 10 for i in range(len(queries))])
    moved = served[np.searchsorted(rows, changed)] + np.random.default_rng(5).normal(
        0, 0.3 * np.abs(served).mean(), (len(changed), served.shape[1])).astype(np.float32)
    began = time.perf_counter()
    backend.update(changed, moved)
    update = (time.perf_counter() - began) / len(changed)
    began = time.perf_counter()
    backend.remove(removed)
    remove = (time.perf_counter() - began) / len(removed)
    after = backend.search(exact_cosine_after[0], candidates)
    cosine_recall = np.mean([len(set(a.tolist()) & set(e.tolist())) / candidates
                             for a, e in zip(after, exact_cosine_after[1])])
    return {"library": backend.name, "build_s": build, "search_ms": search * 1000, "recall10": recall,
            "recall10_without_popular": recall_no_popular, "update_us": update * 1e6, "remove_us": remove * 1e6,
            "cosine_recall_after_changes": cosine_recall, "rss_growth_mb": grown / 2 ** 20,
            "reported_mb": None if backend.reported() is None else backend.reported() / 2 ** 20}


def main() -> int:
    global TRAINER
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--popular", type=int, default=1024)
    parser.add_argument("--libraries", default="usearch,usearch-i8,voyager,voyager-e4m3,faiss-ivf,faiss-hnsw")
    arguments = parser.parse_args()
    from streamer.core.similarity import normalise_rows, popularity_counts, score_candidates, served_vectors, top_k

    TRAINER = trainer = load_model(arguments)
    arrays = trainer._items.arrays
    rows = trainer._items.live_rows()
    served = served_vectors(arrays, rows)
    random = np.random.default_rng(7)
    queries = np.sort(random.choice(rows, arguments.queries, replace=False))
    exact = served_ranking(trainer, queries, [rows] * len(queries))
    counts = popularity_counts(arrays, rows, trainer.settings.popularity_half_life, trainer.watermark)
    popular = rows[np.argsort(-counts)[:arguments.popular]]
    changed = np.sort(random.choice(rows, max(1, len(rows) // 50), replace=False))
    removed = np.sort(random.choice(np.setdiff1d(rows, np.union1d(changed, queries)), max(1, len(rows) // 100),
                                    replace=False))
    # exact cosine neighbours after the changes, for the queries (what the index should return then)
    after = served.copy()
    after[np.searchsorted(rows, changed)] = served[np.searchsorted(rows, changed)] + np.random.default_rng(5).normal(
        0, 0.3 * np.abs(served).mean(), (len(changed), served.shape[1])).astype(np.float32)
    keep = ~np.isin(rows, removed)
    unit_after = normalise_rows(after[keep])
    query_after = normalise_rows(after[np.searchsorted(rows, queries)])
    exact_after = rows[keep][np.argsort(-(query_after @ unit_after.T), axis=1)[:, :arguments.candidates]]
    size = served.shape[1]
    factories = {"usearch": lambda: Usearch(size), "usearch-i8": lambda: Usearch(size, "i8"),
                 "voyager": lambda: Voyager(size), "voyager-e4m3": lambda: Voyager(size, "E4M3"),
                 "faiss-ivf": lambda: FaissIvf(size),
                 "faiss-hnsw": lambda: FaissHnsw(size)}
    print(f"{len(rows)} items, d={size}, {len(queries)} queries, {arguments.candidates} index candidates "
          f"+ {arguments.popular} popular, raw served vectors {served.nbytes / 2 ** 20:.1f} MB", flush=True)
    began = time.perf_counter()
    score_candidates(arrays, queries[:20], rows, trainer.settings, trainer.watermark)
    print(f"exact brute force: {(time.perf_counter() - began) / 20 * 1000:.1f} ms per query (batch of 20)", flush=True)
    for name in arguments.libraries.split(","):
        result = measure(factories[name](), rows, served, queries, exact, popular, arguments.candidates,
                         changed, removed, (query_after, exact_after))
        print("  ".join(f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}"
                        for key, value in result.items()), flush=True)
    return 0


TRAINER = None

if __name__ == "__main__":
    sys.exit(main())
