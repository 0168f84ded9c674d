"""A delta taken in two steps, so that copying most of its rows happens off the loop.

At 10M items a checkpoint of 300,000 events touches about 900,000 rows, most of them as negatives. Copying
them is memory-bound and took most of the loop's part of a checkpoint: 0.8–0.9 s alone, 2–2.5 s on the loaded
VM. So the copy moves to another thread, and the loop only lists rows:

1. ``take_rows`` (on the loop) lists the rows changed so far, with their ids and the items released so far,
   and clears their ``DIRTY_STATE``/``DIRTY_OUTPUT`` bits. It does not copy a row.
2. ``gather_rows`` (on any thread: ``np.take`` releases the GIL) copies those rows from the live arrays
   while learning goes on. A row that learning writes meanwhile may be copied half-updated, but every write
   sets its bit again.
3. ``delta.collect(trainer, buffers, early=part)`` (on the loop, at a consistent point) takes the rest as
   usual: the rows whose bits are set now, which include every early row written since step 1. It also takes
   the parts that are small or must be read at one instant: the early rows' dirty bytes, the noise tree nodes
   above every changed row, sessions, replay and scalars.

``delta.apply`` writes the early rows first, then the rest, so every half-updated early row is overwritten by
its value at step 3. This is the argument compaction already uses for a base read live: the restored state is
exactly the state at step 3, the one whose offsets are committed.
"""

from __future__ import annotations

import numpy as np

from streamer.core.sgns import DIRTY_OUTPUT, DIRTY_STATE
from streamer.core.vocab import ItemArrays

__all__ = ["ROW_FIELDS", "OUTPUT_FIELDS", "KEEP_SERVED", "take_rows", "gather_rows", "gather", "early_changed_rows"]

ROW_FIELDS = tuple(name for name in ItemArrays._fields if name != "noise_tree")
OUTPUT_FIELDS = ("vectors_out", "accum_out")  # all a negative's update changes
KEEP_SERVED = np.uint8(~(DIRTY_STATE | DIRTY_OUTPUT) & 0xFF)
_GATHERED = tuple(name for name in ROW_FIELDS if name != "dirty")  # the dirty bytes are read at step 3


def take_rows(trainer) -> dict:
    """Step 1: the rows changed so far (whole, and output side only), their ids, the items released so far;
    their change bits are cleared and the released list starts again."""
    items, arrays = trainer._items, trainer._items.arrays
    dirty = arrays.dirty[:len(items.ids)]
    rows = np.flatnonzero(dirty & DIRTY_STATE)
    output_rows = np.flatnonzero((dirty & (DIRTY_STATE | DIRTY_OUTPUT)) == DIRTY_OUTPUT)
    part = {"arrays": arrays, "ids": items.ids, "rows": rows, "output_rows": output_rows, "gathered": None,
            "meta": {"released": list(items.released)}}
    items.released = []
    arrays.dirty[rows] &= KEEP_SERVED
    arrays.dirty[output_rows] &= KEEP_SERVED
    return part


def gather_rows(part: dict, buffers: dict | None = None) -> None:
    """Step 2 (any thread): copy the part's rows from the arrays it was taken from, into ``buffers``, and read
    their ids. An id read here may be newer than step 1's only for a row released and given to another item
    since; that row is in step 3's rows, after the release, so the restored state is the same."""
    arrays, rows, output_rows = part["arrays"], part["rows"], part["output_rows"]
    part["meta"]["item_ids"], part["meta"]["output_ids"] = _ids(part["ids"], rows), _ids(part["ids"], output_rows)
    gathered = {f"early.items.{name}": gather(getattr(arrays, name), rows, buffers, f"early.items.{name}")
                for name in _GATHERED}
    gathered.update({f"early.items.output.{name}": gather(getattr(arrays, name), output_rows, buffers,
                                                          f"early.items.output.{name}") for name in OUTPUT_FIELDS})
    part["gathered"] = gathered


def _ids(ids: list, rows: np.ndarray, chunk: int = 50_000) -> list:
    """``[ids[row] for row in rows]`` in chunks: one C call holds the GIL throughout, the loop waits at most a chunk."""
    out: list = []
    for start in range(0, rows.size, chunk):
        out.extend(map(ids.__getitem__, rows[start:start + chunk].tolist()))
    return out


def early_changed_rows(part: dict, arrays, meta: dict, out: dict) -> list[np.ndarray]:
    """Step 3's share of the part: its ids and arrays into the delta (``meta["early"]``, ``early.*``), its dirty
    bytes read now; returns its rows whose noise tree nodes the delta must carry (whole rows and released)."""
    if part["gathered"] is None:
        raise ValueError("the early rows were not gathered")
    rows = part["rows"]
    meta["early"] = part["meta"]
    out["early.items.rows"] = rows.astype(np.int32)
    out.update(part["gathered"])
    out["early.items.dirty"] = arrays.dirty[rows] & KEEP_SERVED
    out["early.items.output_rows"] = part["output_rows"].astype(np.int32)
    return [rows, np.array([row for _, row in part["meta"]["released"]], np.int64)]


def gather(source: np.ndarray, rows: np.ndarray, buffers: dict | None, name: str) -> np.ndarray:
    """``source[rows]``, into ``buffers[name]`` when given (grown by a quarter beyond the need when too small)."""
    if buffers is None:
        return source[rows]
    held = buffers.get(name)
    if held is None or held.shape[0] < rows.size or held.shape[1:] != source.shape[1:] or held.dtype != source.dtype:
        held = buffers[name] = np.empty((rows.size + rows.size // 4,) + source.shape[1:], source.dtype)
    out = held[:rows.size]
    np.take(source, rows, axis=0, out=out)
    return out
