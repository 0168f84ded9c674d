"""The neighbour index in checkpoints: the lists' centroids, and each row's list in the item arrays.

Rebuilding the index from the vectors after a load cost 13-15 s at 1M items, blocking the daemon's first list
refresh: k-means on 80,000 sampled directions into 2,000 lists (~3 s) and assigning every row to its nearest
list by one (n, 64) x (64, lists) product (~7 s) were most of it (docs/neighbours.md). Both are kept instead:

- ``ItemArrays.index_list``: the list each row was last put in, + 1 (0: none); an item array like the others,
  so a base holds it and a segment holds it for the rows it carries whole (4 bytes a row);
- ``index.centroids`` (lists x d float32; 512 kB at 1M items) and ``meta["index"]`` (the size the lists were
  trained at, the updates since: when the index goes stale): a base always holds them, a segment holds
  the centroids only when the lists were trained again since the file before it, together with
  ``index.lists``, every row's list (so rows the segment does not carry do not keep a list of the old
  centroids).

On load the index :meth:`~streamer.core.neighbours.NeighbourIndex.adopt`\\ s them, and its first rebuild puts
each live row back in its list (the rows whose ``DIRTY_INDEX`` bit says they may have moved since go to their
nearest list), computing only the keys and faiss's codes. What the index stores are not kept: they are
the rows' score keys, computed from the vectors the checkpoint holds anyway (443 MB at 1M items).

A row's list is a hint: a row only drawn as a negative since its last whole carry keeps its older list after
a load, as a live row whose key moved less than the re-index threshold keeps its list. Candidates are always
re-scored from the live vectors, so a row in a neighbouring list can only be missed, never scored wrong.
A file without these parts (written before them) loads as before: k-means and every row assigned.

Pure: no I/O.
"""

from __future__ import annotations

import numpy as np

__all__ = ["base_part", "segment_part", "trainings", "restore"]

CENTROIDS = "index.centroids"
LISTS = "index.lists"


def _index(trainer):
    similar = getattr(trainer, "_similar", None)  # absent while a trainer is being set up
    return None if similar is None else similar.index


def trainings(trainer) -> int:
    """How many times the index made new lists: a segment carries them when this moved since the last file."""
    index = _index(trainer)
    return 0 if index is None else index.trainings


def _meta(index) -> dict:
    _, trained_size, updates = index.training()
    return {"trained_size": int(trained_size), "updates_since_training": int(updates)}


def _centroids(index) -> np.ndarray:
    centroids = index.training()[0]
    return np.zeros((0, 0), np.float32) if centroids is None else centroids.copy()


def base_part(trainer) -> tuple[dict, dict[str, np.ndarray]]:
    """``meta["index"]`` and the centroids member of a base (``index_list`` is an item array: it is there already)."""
    index = _index(trainer)
    return _meta(index), {CENTROIDS: _centroids(index)}


def segment_part(trainer, mark: int) -> tuple[dict, dict[str, np.ndarray]]:
    """``meta["index"]`` of a segment, and the centroids and every row's list when the lists were trained again
    since ``mark`` (:func:`trainings` at the file before)."""
    index = _index(trainer)
    if index.trainings == mark:
        return _meta(index), {}
    rows = len(trainer._items.ids)
    return _meta(index), {CENTROIDS: _centroids(index), LISTS: trainer._items.arrays.index_list[:rows].copy()}


def restore(trainer, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """After a base (or a segment) was applied: the index adopts the lists it holds, for its first rebuild."""
    if "index" not in meta:
        return
    index = _index(trainer)
    if LISTS in arrays:
        lists = arrays[LISTS]
        trainer._items.arrays.index_list[:lists.shape[0]] = lists
    if CENTROIDS in arrays:
        centroids = arrays[CENTROIDS]
        index.adopt(centroids if centroids.size else None, meta["index"]["trained_size"],
                    meta["index"]["updates_since_training"])
    else:  # the same lists: only how far they have gone stale moved
        centroids = index.training()[0]
        if centroids is not None:
            index.adopt(centroids, meta["index"]["trained_size"], meta["index"]["updates_since_training"])
