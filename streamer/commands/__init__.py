"""One module per ``streamer`` command (see :mod:`streamer.cli`), and what they share."""

from __future__ import annotations

import argparse
from collections.abc import Collection

__all__ = ["comma_choices"]


def comma_choices(text: str, known: Collection[str], what: str) -> list[str]:
    """``"a,b,a"`` -> ``["a", "b"]`` (in order, once each) for an argparse ``type=``; an empty list or a name
    not in ``known`` is argparse's error, naming the ``what``(s) it knows."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {unknown}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))
