"""A moved row's nearest list, looked for from its old list first, is exactly its nearest of all."""

from __future__ import annotations

import numpy as np

from streamer.core.list_assign import nearest_from, neighbourhoods


def _unit(vectors):
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_nearest_from_an_old_list_is_the_exact_nearest_and_mostly_skips_the_full_product():
    random = np.random.default_rng(0)
    centroids = _unit(random.normal(size=(300, 16)))
    members = random.integers(0, 300, 5000)
    directions = _unit(centroids[members] + random.normal(0, 0.08, (5000, 16)))  # near their centroid
    directions[:500] = _unit(random.normal(size=(500, 16)))  # and some anywhere, their old list far away
    exact = lambda rows: np.argmax(rows @ centroids.T, axis=1)  # noqa: E731
    asked = []
    nearest, outside = neighbourhoods(centroids)
    assert (nearest[:, 0] == np.arange(300)).all() and (outside > 0).all()
    found = nearest_from(directions, members, centroids, nearest, outside,
                         lambda rows: asked.append(len(rows)) or exact(rows))
    assert np.array_equal(found, exact(directions))
    assert 500 <= sum(asked) < 2500  # the far ones and some near ones needed every centroid; most did not
