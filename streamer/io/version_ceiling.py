"""A durable upper bound of the ``version`` a model has published, so versions never decrease (issue 16).

``version`` (each item hash) and meta ``model_version`` are the model's event count plus a base. At start the
base is chosen so that versions continue above what was published before: from the namespace's meta in Redis
(:meth:`streamer.io.redis_sink.RedisSink.continue_versions`) and from this file, which survives a Redis that
restarted empty (no meta left to read) and a kill -9 between checkpoints (versions published after the last
checkpoint). Before a snapshot with a version above the recorded bound is written to Redis, the publisher
thread records ``version + HEADROOM`` (one small atomic file write per ``HEADROOM`` events), so no version
above the file's bound ever reached Redis. The file sits next to the checkpoint (``versions.json``); it is
tied to the model id (a new model starts its versions again).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import orjson

from streamer.logs import log_event

__all__ = ["FILE", "HEADROOM", "VersionCeiling"]

logger = logging.getLogger("streamer.versions")
FILE = "versions.json"
HEADROOM = 100_000  # versions reserved by one write (a restart moves versions up by at most this much more)


class VersionCeiling:
    """``reserved``: no version above it was published for ``model_id``; :meth:`cover` raises it first."""

    def __init__(self, directory, model_id: str):
        self._path = Path(directory) / FILE
        self._model_id = model_id
        self._lock = threading.Lock()
        self.reserved = self._read()

    def _read(self) -> int:
        try:
            raw = orjson.loads(self._path.read_bytes())
            return int(raw["reserved"]) if raw.get("model_id") == self._model_id else 0
        except FileNotFoundError:
            return 0
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            log_event(logger, logging.WARNING, "version_ceiling_unreadable", path=str(self._path), error=repr(error))
            return 0

    def base(self, event_count: int) -> int:
        """The smallest base that puts ``base + event_count`` above every version published."""
        return max(0, self.reserved + 1 - event_count) if self.reserved else 0

    def cover(self, version: int) -> None:
        """Record a bound of at least ``version`` before it is written (the publisher thread). A failed write
        is logged and publishing goes on (versions are then monotone only while Redis keeps its meta)."""
        with self._lock:
            if version <= self.reserved:
                return
            reserved = version + HEADROOM
            temporary = self._path.with_name(self._path.name + ".tmp")
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with open(temporary, "wb") as handle:
                    handle.write(orjson.dumps({"model_id": self._model_id, "reserved": reserved}))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self._path)
            except OSError as error:
                log_event(logger, logging.WARNING, "version_ceiling_not_saved", path=str(self._path), error=repr(error))
                return
            self.reserved = reserved
