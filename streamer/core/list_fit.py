"""Do an inverted file's k-means lists still fit the vectors they hold? One Lloyd step tells, cheaply.

:class:`~streamer.core.neighbours.NeighbourIndex` trained new lists once its vectors had been replaced four
times over. In a daemon at 1M items that came every 35-70 s (85,000-115,000 re-indexed rows a second at
~4,000 events/s: hot rows are re-indexed again and again), and each new training blocked the loop 10-20 s. Yet
with that rule switched off the lists kept recall@10 at 1.0 over 11M updates, and new lists fitted the rows no
better than the old ones (docs/neighbours.md). New lists pay only when the rows have moved away from the
centroids, so that is what is measured before training them: the mean best cosine of held-out rows to the
centroids, against the same for centroids moved one Lloyd step (each to the mean direction of its members
among other sampled rows). A gain below :data:`REFIT_GAIN` keeps the lists.

Pure: numpy only, no I/O.
"""

from __future__ import annotations

import numpy as np

from streamer.core.neighbours import unit_rows

__all__ = ["REFIT_GAIN", "FIT_SAMPLE", "lloyd_gain", "fit_sample", "still_fits"]

REFIT_GAIN = 0.01  # mean cosine a Lloyd step must gain on held-out rows for new lists to pay
FIT_SAMPLE = 30  # rows per list the check reads: 20 to move the centroids one Lloyd step, 10 held out


def lloyd_gain(centroids: np.ndarray, fitting: np.ndarray, held_out: np.ndarray) -> float:
    """Mean best cosine of ``held_out`` directions to ``centroids`` moved one (spherical) Lloyd step on
    ``fitting``, minus the same to ``centroids`` as they are. All (n, d) float32; the centroids unit vectors;
    a list with no member among ``fitting`` keeps its centroid."""
    fitting, held_out = unit_rows(fitting), unit_rows(held_out)
    nearest = np.argmax(fitting @ centroids.T, axis=1)
    order = np.argsort(nearest, kind="stable")
    members = np.bincount(nearest, minlength=centroids.shape[0])
    sums = np.zeros_like(centroids)
    present = np.flatnonzero(members)
    sums[present] = np.add.reduceat(fitting[order], np.concatenate([[0], np.cumsum(members[present])[:-1]]), axis=0)
    moved = np.where(members[:, None] > 0, unit_rows(sums), centroids).astype(np.float32)
    return float(np.mean(np.max(held_out @ moved.T, axis=1)) - np.mean(np.max(held_out @ centroids.T, axis=1)))


def fit_sample(index, count: int) -> np.ndarray:
    """Seeded positions among ``count`` rows for :func:`still_fits` (another sample at every check) of ``index``
    (a :class:`~streamer.core.neighbours.NeighbourIndex` with lists)."""
    return np.random.default_rng((index.seed, index.fit_checks)).choice(count, min(count, FIT_SAMPLE * index.lists),
                                                                        replace=False)


def still_fits(index, sample: np.ndarray) -> bool:
    """True (and ``index``'s update count starts again) when a Lloyd step from its centroids gains less than
    :data:`REFIT_GAIN` mean cosine on ``sample`` (stored-form vectors of :func:`fit_sample`'s rows, a third held
    out): its lists still fit, new ones would not pay."""
    index.fit_checks += 1
    directions = sample if index.direction is None else sample[:, index.direction]
    split = directions.shape[0] * 2 // 3
    fits = lloyd_gain(index.centroids, directions[:split], directions[split:]) < REFIT_GAIN
    if fits:
        index.updates_since_training = 0
    return fits
