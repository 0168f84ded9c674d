"""Structured one-line logs: ``<time> <LEVEL> <event> key=value ...`` (logfmt-style, greppable).

>>> format_fields("flush", {"items": 3, "topic": "events", "reason": "not json"})
'flush items=3 topic=events reason="not json"'
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["configure_logging", "format_fields", "log_event"]


def _value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    if not text or any(character in text for character in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def format_fields(event: str, fields: dict[str, Any]) -> str:
    """``event`` followed by ``key=value`` pairs, values quoted when they contain spaces or quotes."""
    return " ".join([event] + [f"{key}={_value(value)}" for key, value in fields.items()])


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log one line of note: an event name plus its fields."""
    if logger.isEnabledFor(level):
        logger.log(level, format_fields(event, fields))


def configure_logging(level: str = "INFO") -> None:
    """One line per record on stderr, UTC-free ISO time, logger name included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "redis"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
