"""The sink's pending ids (vectors, retirements and neighbour lists not yet in Redis), kept in the checkpoint files.

Every checkpoint file carries a ``pending.json`` member (deflated, CRC-checked by the zip like the others):

- a base, and the first segment after a state whose pending ids are not known from the files (a directory
  written before this member, whose manifest held them), hold them **whole**: ``{"full": {kind: [ids]}}``;
- any other segment holds **what changed since the previous file of the chain**:
  ``{"added": {kind: [ids]}, "removed": {kind: [ids]}}``.

So a checkpoint writes the ids that became pending or were published since the last one, not the whole list
(300,000 neighbour lists due after a catalog load were 5.9 MB in every manifest rewrite). The pending ids of a
link are its base's, then each segment's change applied in order (:func:`replay`). They are taken in the loop
with the state and the offsets of the same checkpoint, and are durable with them: a kill at any moment leaves
the newest linked state's pending ids on disk, and a restarted daemon publishes them (lists owed at a crash
are still refreshed). The change is computed on the writer's thread.
"""

from __future__ import annotations

import orjson

__all__ = ["MEMBER", "encode", "replay", "Pending"]

MEMBER = "pending.json"
Pending = dict[str, list[str]]


def encode(pending: Pending, previous: Pending | None) -> bytes:
    """``pending`` whole (``previous`` None: not known from the files) or as its change from ``previous``."""
    if previous is None:
        return orjson.dumps({"full": pending})
    added, removed = {}, {}
    for kind in sorted(set(pending) | set(previous)):
        now, before = pending.get(kind, []), previous.get(kind, [])
        now_set, before_set = set(now), set(before)
        new = [item for item in now if item not in before_set]
        gone = [item for item in before if item not in now_set]
        if new:
            added[kind] = new
        if gone:
            removed[kind] = gone
    return orjson.dumps({"added": added, "removed": removed})


def replay(pending: Pending, data: bytes) -> tuple[Pending, bool]:
    """The pending ids after a file whose member is ``data``, from those before it (``pending``), and whether
    the member held them whole."""
    change = orjson.loads(data)
    if "full" in change:
        return {str(kind): list(ids) for kind, ids in change["full"].items()}, True
    added, removed = change["added"], change["removed"]
    result = {}
    for kind in set(pending) | set(added):
        gone = set(removed.get(kind, ()))
        kept = [item for item in pending.get(kind, ()) if item not in gone] if gone else list(pending.get(kind, ()))
        if kept or kind in added:
            result[kind] = kept + list(added.get(kind, ()))
    return result, False
