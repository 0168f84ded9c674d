"""Checkpoints: the whole engine state in one versioned zip file, written atomically.

Layout (a zip archive, readable with ``numpy.load``):
- ``meta.json``: ``{"format": "streamer-checkpoint", "version": 1, "settings": {...}, "event_count",
  "watermark", "next_maintenance", "item_ids" (row -> id or null), "item_free", "user_ids",
  "user_free", "attributes", "retired", "pending_retired"}``
- ``items.<field>.npy``: vectors_in, vectors_out, AdaGrad accumulators, counts, last_seen, status,
  dirty, noise weights and the Fenwick tree, decayed counts (``recent``; absent from older files: rebuilt
  from the counts): the rows in use, padded back to ``item_capacity`` (meta) on load; the tree at full
  capacity (files without ``item_capacity`` hold every array at full capacity), so a resumed run is
  bit-identical;
- ``users.<field>.npy``: open sessions (last ts, length, ring of recent items);
- ``replay.pairs.npy``, ``replay.counters.npy``, ``replay.log.npy`` (the backlog the replay debt is drawn from), ``rng.npy``;
- ``recent_times.npy``: the last ``watermark_quorum - 1`` event times (absent from older files: refilled by the next events);
- ``index.centroids.npy`` and ``meta["index"]``: the neighbour index's lists (with ``items.index_list``, each row's
  list), :mod:`streamer.core.index_state` (absent from older files: the index trains new lists on load).

Written to a temporary file in the target directory, fsynced, renamed over the target, and the
directory fsynced. Member CRCs (zip) catch corruption; any problem on load is a CheckpointError.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import orjson

from streamer.core import index_state
from streamer.core.delta import start_tracking
from streamer.core.learning import ReplayArrays
from streamer.core.sessions import UserArrays
from streamer.core.settings import TrainerSettings
from streamer.core.vocab import ItemArrays
from streamer.errors import CheckpointError

__all__ = ["FORMAT", "VERSION", "save_trainer", "load_trainer", "trainer_state", "restore_state", "read_state",
           "write_archive", "read_archive", "read_member"]

FORMAT = "streamer-checkpoint"
VERSION = 1


def trainer_state(trainer, snapshot: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) describing ``trainer`` completely. ``snapshot``: everything but the item arrays is a copy
    (for a base written on another thread while learning goes on; the item rows it may see half-updated are
    the ``DIRTY_STATE`` rows of the deltas after it, see :mod:`streamer.core.delta`)."""
    items, users = trainer._items, trainer._users
    same = (lambda value: value) if not snapshot else (lambda value: value.copy())
    meta = {
        "format": FORMAT, "version": VERSION, "settings": trainer.settings.to_dict(),
        "event_count": trainer._event_count, "watermark": trainer._watermark,
        "next_maintenance": trainer._next_maintenance,
        "item_ids": same(items.ids), "item_free": same(items.free), "user_ids": same(users.ids),
        "user_free": same(users.free), "attributes": same(items.attributes), "retired": sorted(items.retired),
        "pending_retired": sorted(trainer._pending_retired), "replay_debt": trainer.replay_debt,
    }
    for key in ("watermark", "next_maintenance"):
        if meta[key] == float("-inf"):
            meta[key] = None
    replay_log, meta["replay_log"] = trainer._debt.log_state()
    used, meta["item_capacity"] = len(items.ids), int(items.arrays.counts.shape[0])
    # rows beyond the used ones are zeros: only the used prefix is written (the tree whole: its nodes span rows)
    arrays = {f"items.{name}": value if name == "noise_tree" else value[:used]
              for name, value in items.arrays._asdict().items()}
    arrays.update({f"users.{name}": same(value) for name, value in users.arrays._asdict().items()})
    arrays.update({"replay.pairs": same(trainer._replay.pairs), "replay.counters": trainer._replay.counters.copy(),
                   "rng": trainer._rng.copy(), "replay.log": replay_log, "recent_times": trainer._recent_times.copy()})
    meta["index"], index_arrays = index_state.base_part(trainer)  # the neighbour index's lists (centroids)
    arrays.update(index_arrays)
    return meta, arrays


def _padded(value: np.ndarray, capacity: int | None, name: str) -> np.ndarray:
    """A row array written as its used prefix, back at full capacity (files before ``item_capacity``: whole)."""
    if capacity is None or name == "noise_tree" or value.shape[0] == capacity:
        return value
    full = np.zeros((capacity,) + value.shape[1:], value.dtype)
    full[:value.shape[0]] = value
    return full


def _float(value) -> float:
    return float(value) if value is not None else float("-inf")


def position_map(ids: list) -> dict:
    """id -> position of a row -> id list (``None``: a free position), built in C (``dict(zip)``), not by a loop."""
    positions = dict(zip(ids, range(len(ids))))
    positions.pop(None, None)
    return positions


def restore_state(trainer, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Rebuild ``trainer`` in place from ``trainer_state`` output."""
    trainer.settings = TrainerSettings.from_dict(meta["settings"])
    trainer._reset_state()
    items, users = trainer._items, trainer._users
    if "items.recent" not in arrays:  # written before the decayed prior: it starts from the cumulative counts
        arrays["items.recent"] = arrays["items.counts"].astype(np.float64)
    if "items.prior" not in arrays:  # written before the blended catalog prior: no announced item keeps one
        arrays["items.prior"] = np.zeros(arrays["items.counts"].shape[0], np.float32)
    if "items.partners" not in arrays:  # written before the observed co-occurrence table: it starts empty
        shape = (arrays["items.counts"].shape[0], trainer.settings.cooccurrence_partners)
        arrays["items.partners"], arrays["items.partner_counts"] = np.zeros(shape, np.int32), np.zeros(shape, np.float32)
    if "items.index_list" not in arrays:  # written before the index's lists were kept: every row is assigned again
        arrays["items.index_list"] = np.zeros(arrays["items.counts"].shape[0], np.int32)
    items.arrays = ItemArrays(**{name: _padded(arrays[f"items.{name}"], meta.get("item_capacity"), name)
                                 for name in ItemArrays._fields})
    items.ids = list(meta["item_ids"])
    items.rows = position_map(items.ids)
    items.free = list(meta["item_free"])
    items.restore_attributes(meta["attributes"])
    items.retired = set(meta["retired"])
    users.arrays = UserArrays(**{name: arrays[f"users.{name}"] for name in UserArrays._fields})
    users.ids = list(meta["user_ids"])
    users.slots = position_map(users.ids)
    users.free = list(meta["user_free"])
    trainer._replay = ReplayArrays(arrays["replay.pairs"], arrays["replay.counters"])
    fresh, rng = trainer._rng, arrays["rng"]  # fresh: the streams these settings use (older files kept fewer)
    trainer._rng = rng if rng.shape[0] >= fresh.shape[0] else np.concatenate([rng, fresh[rng.shape[0]:]])
    trainer._event_count = int(meta["event_count"])
    trainer._watermark = _float(meta["watermark"])
    trainer._next_maintenance = _float(meta["next_maintenance"])
    if "recent_times" in arrays:  # older checkpoints: the quorum fills again from the next events
        trainer._recent_times = arrays["recent_times"]
    trainer._pending_retired = set(meta["pending_retired"])
    trainer._debt.owed = int(meta.get("replay_debt", 0))  # checkpoints written before it: nothing owed
    if "replay.log" in arrays:  # older checkpoints: no backlog log, the debt draws from the ring buffer
        trainer._debt.restore_log(arrays["replay.log"], meta["replay_log"])
    index_state.restore(trainer, meta, arrays)  # the index's first rebuild puts rows back in their lists
    start_tracking(trainer)


def save_trainer(trainer, path) -> None:
    """Atomic write: temp file in the same directory, fsync, rename, fsync the directory."""
    write_archive(path, *trainer_state(trainer))


def write_archive(path, meta: dict, arrays: dict[str, np.ndarray], cancelled=lambda: False,
                  members: dict[str, bytes] | None = None) -> int:
    """Write ``meta.json`` and one ``.npy`` member per array as an uncompressed zip (member CRC-32s), atomically:
    temp file in the same directory, fsync, rename, fsync the directory. Returns the bytes written.
    ``cancelled()`` is asked between members; True abandons the write (CheckpointError, nothing left).
    ``members``: other members (name -> bytes), deflated; :func:`read_member` reads one."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                archive.writestr("meta.json", orjson.dumps(meta))
                for name, data in (members or {}).items():
                    archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
                for name, value in arrays.items():
                    if cancelled():
                        raise CheckpointError(f"{target}: write cancelled")
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)
            stream.flush()
            os.fsync(stream.fileno())
            size = stream.tell()
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return size


def read_archive(path, expected_format: str, versions) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a ``write_archive`` file; CheckpointError if it is missing, corrupt (member CRC-32),
    truncated or of another format or of a version not in ``versions`` (an int or a tuple of them)."""
    versions = (versions,) if isinstance(versions, int) else tuple(versions)
    try:
        with zipfile.ZipFile(path, "r") as archive, open(path, "rb", buffering=0) as raw:
            meta = orjson.loads(archive.read("meta.json"))
            if not isinstance(meta, dict) or meta.get("format") != expected_format:
                raise CheckpointError(f"{path}: not a {expected_format} file")
            if meta.get("version") not in versions:
                raise CheckpointError(f"{path}: unsupported {expected_format} version {meta.get('version')!r} "
                                      f"(this version reads {', '.join(map(str, versions))})")
            capacity = meta.get("item_capacity") if expected_format == FORMAT else None  # a base: rows padded
            arrays = {}
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    name = info.filename
                    pad = capacity if name.startswith("items.") and name != "items.noise_tree.npy" else None
                    arrays[name[:-4]] = _read_member(raw, info, pad)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, orjson.JSONDecodeError, EOFError) as error:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({error})") from None
    return meta, arrays


def read_member(path, name: str) -> bytes | None:
    """The member ``name`` of a ``write_archive`` file (CRC-32 checked), None when the file has none;
    CheckpointError if it is missing or corrupt."""
    try:
        with zipfile.ZipFile(path, "r") as archive:
            return archive.read(name) if name in archive.NameToInfo else None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as error:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({error})") from None


CHUNK = 1 << 24  # bytes read (and CRC-checked) at a time


def _read_member(raw, info: zipfile.ZipInfo, capacity: int | None) -> np.ndarray:
    """One stored ``.npy`` member, read from the file straight into its array (with ``capacity``, an array of that
    many rows, the rest zeros: restoring a base is mostly this), no buffer in between; its CRC-32 is checked."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{info.filename}: compressed member")
    raw.seek(info.header_offset)
    local = raw.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise ValueError(f"{info.filename}: bad local header")
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    raw.seek(start)
    version = np.lib.format.read_magic(raw)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(raw)
    if fortran or dtype.hasobject:
        raise ValueError("unexpected array layout")
    header = raw.tell() - start
    raw.seek(start)
    crc = zlib.crc32(raw.read(header))
    rows = max(capacity or 0, shape[0] if shape else 0)
    array = np.zeros((rows,) + tuple(shape[1:]), dtype) if shape else np.zeros((), dtype)
    view = array[:shape[0]] if shape else array.reshape(1)
    target = memoryview(view).cast("B") if view.nbytes else memoryview(b"")
    if header + target.nbytes != info.file_size:
        raise ValueError(f"{info.filename}: size does not match its array")
    for offset in range(0, target.nbytes, CHUNK):
        part = target[offset:offset + CHUNK]
        filled = 0
        while filled < part.nbytes:
            count = raw.readinto(part[filled:])
            if not count:
                raise EOFError("truncated array")
            filled += count
        crc = zlib.crc32(part, crc)
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    return array


def read_state(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) from a checkpoint file; CheckpointError if it is not a valid one."""
    try:
        return read_archive(path, FORMAT, VERSION)
    except CheckpointError as error:
        if "not a streamer-checkpoint file" in str(error):
            raise CheckpointError(f"{path}: not a streamer checkpoint") from None
        raise


def load_trainer(path):
    """A Trainer restored from ``path``."""
    from streamer.core.trainer import Trainer

    meta, arrays = read_state(path)
    trainer = Trainer.__new__(Trainer)
    try:
        restore_state(trainer, meta, arrays)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: incomplete checkpoint ({error})") from None
    return trainer
