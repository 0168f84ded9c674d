"""The topic ids (KIP-516) the checkpointed offsets belong to, in ``topic-ids.json`` beside the checkpoint.

A topic deleted and created again under the same name (a broker that lost its topics, an operator)
gets a new id; offsets of the old topic mean nothing in the new one. The daemon writes this file after a
checkpoint is saved, so the file never names a newer topic than the offsets in the checkpoint: after a
crash between the two the worst case is a partition read again from its beginning, never a skip.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> save_topic_ids(folder, {"events": "01a2-..."}); load_topic_ids(folder)
{'events': '01a2-...'}
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

__all__ = ["TOPIC_IDS", "load_topic_ids", "save_topic_ids"]

TOPIC_IDS = "topic-ids.json"


def load_topic_ids(directory: str | Path) -> dict[str, str]:
    """The saved ids, or ``{}`` (no file, or a file that cannot be read: then ids are learned afresh)."""
    try:
        raw = orjson.loads((Path(directory) / TOPIC_IDS).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return {str(topic): str(topic_id) for topic, topic_id in raw.items()} if isinstance(raw, dict) else {}


def save_topic_ids(directory: str | Path, topic_ids: dict[str, str]) -> None:
    """Write atomically (temporary file, fsync, rename)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{TOPIC_IDS}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(orjson.dumps(dict(sorted(topic_ids.items()))))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / TOPIC_IDS)
