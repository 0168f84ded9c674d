"""Delta state: what changed in a Trainer since the last checkpoint, as a self-contained (meta, arrays) pair.

A delta names items by id: for every changed item its whole row (vectors, AdaGrad accumulators, counts,
last seen, decayed count, noise weight, status), the items released since (id and row), changed
attributes and retirements. Row numbers travel along as a local hint, so that a restore here is
bit-identical (sessions, the replay buffer and the noise tree are local and hold rows); a daemon that
applies another's delta keys on the ids. The small parts are rewritten whole every time: settings-free
scalars (event count, watermark, debt), the generator state, the replay counters, the free lists.
Measured at 1M items (docs/state.md): they are a few kB against hundreds of MB for the rows.

- Item rows come from the ``DIRTY_STATE`` bit of ``arrays.dirty`` (set by every write, cleared here only;
  the publisher's ``DIRTY_SERVED`` bit is kept). A row drawn only as a negative changed its output side
  alone (``DIRTY_OUTPUT``): the delta holds its id, output vector and accumulator (260 of 566 bytes at
  d = 64); with 30 negatives per event these are most of a delta's rows. Released rows have dirty 0: their
  ids come from ``ItemTable.released``.
- The noise tree (a Fenwick tree over the noise weights) is a derived cache, but rebuilding it sums in a
  different order than the incremental updates; the delta carries the tree nodes above the changed rows
  (O(k log V)), or the whole tree after the arrays grew (a grow rebuilds it).
- Sessions: the slots ``UserTable.changed`` lists (events, sweeps, rows forgotten).
- Replay buffer: the ring positions written since the last delta, or all of it after a wrap or a release.
- Neighbour index: its lists' centroids and every row's list when it trained new lists since the last delta
  (:mod:`streamer.core.index_state`); a row's list otherwise travels with its row.

``collect`` takes the delta and starts the next one; ``apply`` replays it onto a trainer restored from the
base snapshot and the earlier deltas. A delta may be taken in two steps, so that copying most of its rows is
off the loop (:mod:`streamer.core.delta_early`): ``take_rows`` lists the rows changed so far and clears their
bits, ``gather_rows`` copies them from the live arrays on another thread while learning goes on, and
``collect(..., early=part)`` takes the rest at a consistent point. The early rows that changed meanwhile are
exactly the rows the rest holds, and ``apply`` writes the early rows first. ``start_tracking`` marks a restored (or freshly snapshotted) trainer as
having nothing unsaved.
"""

from __future__ import annotations

import numpy as np

from streamer.core import index_state
from streamer.core.learning import COUNTER_NEXT, COUNTER_PAIRS
from streamer.core.noise import fenwick_mark_ancestors
from streamer.core.sgns import DIRTY_OUTPUT, DIRTY_STATE
from streamer.core.sessions import UserArrays
from streamer.core.vocab import ItemArrays, clear_rows
from streamer.core.delta_early import ROW_FIELDS, OUTPUT_FIELDS, KEEP_SERVED as _KEEP_SERVED
from streamer.core.delta_early import early_changed_rows, gather, gather_rows, take_rows

__all__ = ["FORMAT", "VERSION", "READS", "collect", "apply", "start_tracking", "tree_nodes", "is_empty", "take_rows",
           "gather_rows"]

FORMAT = "streamer-delta"
VERSION = 2  # 2: may hold an early part (``early.*``); version 1 files are the same without it
READS = (1, 2)


def tree_nodes(rows: np.ndarray, size: int) -> np.ndarray:
    """Fenwick tree positions (1-based, ``size`` = len(tree)) whose sums include any of ``rows``, and 0 (the total)."""
    marked = np.zeros(size, np.bool_)
    marked[0] = True
    fenwick_mark_ancestors(np.asarray(rows, np.int64), marked)
    return np.flatnonzero(marked)


def start_tracking(trainer) -> None:
    """The trainer holds nothing unsaved: clear every ``DIRTY_STATE`` bit and the change logs."""
    trainer._items.arrays.dirty[:] &= _KEEP_SERVED
    _restart(trainer)


def _restart(trainer) -> None:
    """The change logs start again (the dirty bits of what was taken are cleared by the caller)."""
    items, counters = trainer._items, trainer._replay.counters
    items.forget_changes()
    trainer._users.forget_changes()
    trainer._delta_mark = {"item_capacity": items.arrays.counts.shape[0], "next": int(counters[COUNTER_NEXT]),
                           "pairs": int(counters[COUNTER_PAIRS]), "log_version": trainer._debt.version,
                           "index_trainings": index_state.trainings(trainer)}


def is_empty(trainer) -> bool:
    """True when nothing changed since the last ``collect``/``start_tracking`` (then a delta need not be written)."""
    mark, items = trainer._delta_mark, trainer._items
    return not (np.any(items.arrays.dirty[:len(items.ids)] & (DIRTY_STATE | DIRTY_OUTPUT)) or items.released
                or items.attributes_changed or items.retired_changed or any(part.size for part in trainer._users.changed)
                or int(trainer._replay.counters[COUNTER_PAIRS]) != mark["pairs"]
                or trainer._debt.version != mark["log_version"])


def collect(trainer, buffers: dict | None = None, early: dict | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of everything changed since the last call, and start the next delta. ``buffers`` (a dict
    kept by the caller between calls): the changed rows are gathered into arrays kept there and reused by the
    next call (the returned arrays are views of them: use them before the next call), so a checkpoint does
    not fault in hundreds of MB of fresh memory each time (on the measured VM, memory not touched recently
    costs about 5 s per GB the first time, see docs/state.md). ``early``: a part from ``take_rows``, its rows
    gathered (``gather_rows`` has returned); it goes into this delta, before the rows taken now."""
    items, arrays = trainer._items, trainer._items.arrays
    mark = trainer._delta_mark
    dirty = arrays.dirty[:len(items.ids)]
    rows = np.flatnonzero(dirty & DIRTY_STATE)
    output_rows = np.flatnonzero((dirty & (DIRTY_STATE | DIRTY_OUTPUT)) == DIRTY_OUTPUT)
    released = list(items.released)
    meta = _scalars(trainer)
    meta.update({
        "item_ids": list(map(items.ids.__getitem__, rows.tolist())), "released": released,
        "output_ids": list(map(items.ids.__getitem__, output_rows.tolist())),
        "item_length": len(items.ids), "item_capacity": int(arrays.counts.shape[0]),
        "attributes": {item: items.attributes.get(item, {}) for item in items.attributes_changed if item in items.rows},
        "retired_added": sorted(item for item in items.retired_changed if item in items.retired),
        "retired_removed": sorted(item for item in items.retired_changed if item not in items.retired),
    })
    out = {"items.rows": rows.astype(np.int32)}
    out.update({f"items.{name}": gather(getattr(arrays, name), rows, buffers, f"items.{name}")
                for name in ROW_FIELDS})
    out["items.dirty"] &= _KEEP_SERVED
    out["items.output_rows"] = output_rows.astype(np.int32)
    out.update({f"items.output.{name}": gather(getattr(arrays, name), output_rows, buffers, f"items.output.{name}")
                for name in OUTPUT_FIELDS})
    changed_rows = np.concatenate([rows, np.array([row for _, row in released], np.int64)]
                                  + (early_changed_rows(early, arrays, meta, out) if early is not None else []))
    if arrays.counts.shape[0] != mark["item_capacity"]:
        out["items.noise_tree"] = arrays.noise_tree.copy()
    else:
        nodes = tree_nodes(changed_rows, arrays.noise_tree.shape[0])
        out["items.tree_nodes"], out["items.tree_values"] = nodes, arrays.noise_tree[nodes]
    meta["index"], index_arrays = index_state.segment_part(trainer, mark["index_trainings"])
    out.update(index_arrays)  # the neighbour index's lists, when they were trained again since the last file
    _collect_users(trainer, meta, out)
    _collect_replay(trainer, meta, out, bool(released or (early is not None and early["meta"]["released"])))
    arrays.dirty[rows] &= _KEEP_SERVED
    arrays.dirty[output_rows] &= _KEEP_SERVED
    _restart(trainer)
    return meta, out


def _scalars(trainer) -> dict:
    def finite(value: float):
        return None if value == float("-inf") else value

    return {"format": FORMAT, "version": VERSION, "event_count": trainer._event_count,
            "watermark": finite(trainer._watermark), "next_maintenance": finite(trainer._next_maintenance),
            "pending_retired": sorted(trainer._pending_retired), "replay_debt": trainer._debt.owed,
            "item_free": list(trainer._items.free)}


def _collect_users(trainer, meta: dict, out: dict) -> None:
    users = trainer._users
    marked = np.zeros(len(users.ids), np.bool_)  # a mark per slot, not np.unique: O(n), 0.11 s -> ms at 300k events
    for part in users.changed:
        part = np.asarray(part, np.int64)
        marked[part[part < marked.shape[0]]] = True
    slots = np.flatnonzero(marked)
    meta.update({"user_ids": [users.ids[slot] for slot in slots.tolist()], "user_length": len(users.ids),
                 "user_capacity": int(users.arrays.last_ts.shape[0]), "user_free": list(users.free)})
    out["users.slots"] = slots
    out.update({f"users.{name}": getattr(users.arrays, name)[slots] for name in UserArrays._fields})


def _collect_replay(trainer, meta: dict, out: dict, released: bool) -> None:
    replay, mark = trainer._replay, trainer._delta_mark
    capacity = replay.pairs.shape[0]
    written = int(replay.counters[COUNTER_PAIRS]) - mark["pairs"]  # an upper bound of the ring writes
    if released or written >= capacity:
        positions = np.arange(capacity, dtype=np.int64)  # released rows were erased anywhere in the ring
    else:
        positions = (mark["next"] + np.arange((int(replay.counters[COUNTER_NEXT]) - mark["next"]) % max(capacity, 1),
                                              dtype=np.int64)) % max(capacity, 1)
    out["replay.positions"], out["replay.values"] = positions, replay.pairs[positions]
    out["replay.counters"], out["rng"] = replay.counters.copy(), trainer._rng.copy()
    out["recent_times"] = trainer._recent_times.copy()  # the watermark quorum's last event times
    meta["replay_log_changed"] = trainer._debt.version != mark["log_version"]
    if meta["replay_log_changed"]:
        out["replay.log"], meta["replay_log"] = trainer._debt.log_state()


def apply(trainer, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Replay a delta from ``collect`` onto ``trainer`` (restored from the state the delta was taken after)."""
    items = trainer._items
    _resize_items(items, int(meta["item_capacity"]))
    items.ids.extend([None] * (int(meta["item_length"]) - len(items.ids)))
    if "early" in meta:  # taken first, copied while learning went on: the rows below overwrite what changed
        _apply_rows(items, meta["early"], arrays, "early.items")
    rows = _apply_rows(items, meta, arrays, "items")
    if "items.noise_tree" in arrays:
        items.arrays.noise_tree[:] = arrays["items.noise_tree"]
    else:
        items.arrays.noise_tree[arrays["items.tree_nodes"]] = arrays["items.tree_values"]
    items.free = list(meta["item_free"])
    for item, attributes in meta["attributes"].items():
        items.set_attributes(item, attributes)
    if "early" in meta:
        items.offer(arrays["early.items.rows"])
    items.offer(rows)  # counts written directly: the attributes' leaders follow (as after a learned batch)
    items.retired.update(meta["retired_added"])
    items.retired.difference_update(meta["retired_removed"])
    _apply_users(trainer._users, meta, arrays)
    _apply_rest(trainer, meta, arrays)


def _apply_rows(items, meta: dict, arrays: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    """Release, map and write the rows of one part (``prefix``: ``items`` or ``early.items``); its whole rows."""
    for item, row in meta["released"]:
        _release_row(items, item, int(row))
    rows = arrays[f"{prefix}.rows"]
    _remap(items.ids, items.rows, meta["item_ids"], rows.tolist())
    for name in ROW_FIELDS:
        getattr(items.arrays, name)[rows] = arrays[f"{prefix}.{name}"]
    for name in OUTPUT_FIELDS:  # the rows of live items that were only drawn as negatives (their ids: output_ids)
        getattr(items.arrays, name)[arrays[f"{prefix}.output_rows"]] = arrays[f"{prefix}.output.{name}"]
    return rows


def _remap(ids: list, positions: dict, new_ids: list, rows: list[int]) -> None:
    """``ids[row] = new_ids[i]`` for ``rows[i]``, and the reverse map ``positions`` with them: an id that held one
    of those rows before (and still maps to it) leaves the map; ``None`` frees a row. Loops in C (map, zip,
    dict.update) but for the ids replaced, so a delta of 10^5 rows costs milliseconds."""
    replaced = [(previous, row) for previous, new, row in zip(map(ids.__getitem__, rows), new_ids, rows)
                if previous is not None and previous != new]
    for previous, row in replaced:
        if positions.get(previous) == row:
            del positions[previous]
    list(map(ids.__setitem__, rows, new_ids))
    positions.update(zip(new_ids, rows))
    positions.pop(None, None)


def _resize_items(items, capacity: int) -> None:
    if items.arrays.counts.shape[0] != capacity:
        items.resize(capacity)  # the delta holds the whole tree after a grow


def _release_row(items, item: str, row: int) -> None:
    if items.rows.get(item) == row:
        del items.rows[item]
    if items.ids[row] == item:
        items.ids[row] = None
    items._unindex(item)
    clear_rows(items.arrays, row)  # the tree nodes above it come with the delta


def _apply_users(users, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    capacity = int(meta["user_capacity"])
    if users.arrays.last_ts.shape[0] != capacity:
        grown = users._allocate(capacity)
        for source, target in zip(users.arrays, grown):
            target[:source.shape[0]] = source
        users.arrays = grown
    users.ids.extend([None] * (int(meta["user_length"]) - len(users.ids)))
    slots = arrays["users.slots"]
    _remap(users.ids, users.slots, meta["user_ids"], slots.tolist())
    for name in UserArrays._fields:
        getattr(users.arrays, name)[slots] = arrays[f"users.{name}"]
    users.free = list(meta["user_free"])


def _apply_rest(trainer, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    replay = trainer._replay
    replay.pairs[arrays["replay.positions"]] = arrays["replay.values"]
    replay.counters[:] = arrays["replay.counters"]
    trainer._rng[:] = arrays["rng"]
    if "recent_times" in arrays:  # deltas written before the watermark quorum: it fills again
        trainer._recent_times = arrays["recent_times"].copy()
    trainer._event_count = int(meta["event_count"])
    trainer._watermark = float("-inf") if meta["watermark"] is None else float(meta["watermark"])
    trainer._next_maintenance = float("-inf") if meta["next_maintenance"] is None else float(meta["next_maintenance"])
    trainer._pending_retired = set(meta["pending_retired"])
    trainer._debt.owed = int(meta["replay_debt"])
    if meta["replay_log_changed"]:
        trainer._debt.restore_log(arrays["replay.log"], meta["replay_log"])
    index_state.restore(trainer, meta, arrays)  # after the rows: a retrained index's lists of every row
