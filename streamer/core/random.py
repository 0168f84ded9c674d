"""Seeded random numbers inside numba: splitmix64 streams kept in a uint64 state array.

The whole generator state is the array itself, so a checkpoint stores it exactly and a run
resumed from a checkpoint draws the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["new_state", "next_u64", "next_unit", "next_below"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def new_state(seed: int, streams: int = 1) -> np.ndarray:
    """One independent stream per worker, derived from ``seed``."""
    base = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        return np.array([base + np.uint64(stream + 1) * _GOLDEN for stream in range(streams)], dtype=np.uint64)


@numba.njit(cache=True, nogil=True)
def next_u64(state, slot):
    """splitmix64: advance stream ``slot`` and return a 64-bit value."""
    state[slot] += _GOLDEN
    value = state[slot]
    value = (value ^ (value >> np.uint64(30))) * _MIX1
    value = (value ^ (value >> np.uint64(27))) * _MIX2
    return value ^ (value >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def next_unit(state, slot):
    """Uniform float in [0, 1) with 53 random bits."""
    return float(next_u64(state, slot) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def next_below(state, slot, bound):
    """Uniform integer in [0, bound)."""
    return np.int64(next_u64(state, slot) % np.uint64(bound))
