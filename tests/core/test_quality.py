"""Planted structure is recovered, and new items start next to their neighbours (not at random)."""

import numpy as np

from streamer import Trainer

from tests.core.synthetic import cluster_of, clustered_events


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_most_similar_recovers_planted_clusters():
    trainer = Trainer(vector_size=16, seed=2, subsample=0.0)  # 40 items: all "frequent"
    trainer.learn(clustered_events(clusters=5, items_per_cluster=8, sessions=600))
    ids, _ = trainer.vectors()
    precision = np.mean([
        np.mean([cluster_of(other) == cluster_of(item) for other, _ in trainer.most_similar(item, k=5)])
        for item in ids
    ])
    assert precision > 0.9  # chance is 7/39 ~ 0.18


def test_cosine_of_vectors_recovers_planted_clusters():
    trainer = Trainer(vector_size=16, seed=2, subsample=0.0)  # 40 items: all "frequent"
    trainer.learn(clustered_events(clusters=5, items_per_cluster=8, sessions=600))
    ids, vectors = trainer.vectors()
    normalised = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = normalised @ normalised.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, :5]
    precision = np.mean([[cluster_of(ids[j]) == cluster_of(ids[i]) for j in row] for i, row in enumerate(nearest)])
    assert precision > 0.9


def test_new_item_starts_closer_to_its_session_neighbours_than_chance():
    trainer = Trainer(vector_size=16, seed=4, subsample=0.0)  # 40 items: all "frequent"
    events = clustered_events(clusters=5, items_per_cluster=8, sessions=400)
    trainer.learn(events)
    ts = events[-1][2] + 10_000
    # a new item appears in a session of cluster 2; its first vector comes from the items before it
    trainer.learn([("shopper", "c2_i0", ts), ("shopper", "c2_i1", ts + 1), ("shopper", "c2_i2", ts + 2),
                   ("shopper", "newcomer", ts + 3)])
    new = unit(trainer.vector("newcomer"))
    same = [new @ unit(trainer.vector(f"c2_i{index}")) for index in range(8)]
    other = [new @ unit(trainer.vector(f"c{cluster}_i{index}")) for cluster in (0, 1, 3, 4) for index in range(8)]
    assert np.mean(same) > 0.5
    assert np.mean(same) > np.mean(other) + 0.3


def test_catalog_upsert_starts_at_items_sharing_attributes():
    trainer = Trainer(vector_size=16, seed=4, subsample=0.0)  # 40 items: all "frequent"
    trainer.learn(clustered_events(clusters=5, items_per_cluster=8, sessions=400))
    trainer.catalog([{"op": "upsert", "item": f"c3_i{index}", "attrs": {"brand": "three"}} for index in range(8)])
    trainer.take_changed()
    report = trainer.catalog([{"op": "upsert", "item": "announced", "attrs": {"brand": "three", "colour": "red"}}])
    assert report.accepted == 1
    assert trainer.take_changed() == {"announced"}  # usable (and published) before its first click
    new = unit(trainer.vector("announced"))
    same = np.mean([new @ unit(trainer.vector(f"c3_i{index}")) for index in range(8)])
    other = np.mean([new @ unit(trainer.vector(f"c0_i{index}")) for index in range(8)])
    assert same > 0.5 and same > other + 0.3
    unknown = trainer.catalog([{"op": "upsert", "item": "loner", "attrs": {"brand": "none-like-it"}}])
    assert unknown.accepted == 1 and trainer.vector("loner") is not None  # random start when nothing is known
