"""Typed values of settings: the text of a flag, an environment variable or a TOML key turned into the
field's type (bool words, int, float, a choice), engine knobs included, and a URL's password masked for display.

Pure helpers of :mod:`streamer.config`, which alone reads the environment and the file.

>>> convert_value("flush_interval", float, None, "0.5", "environment")
0.5
>>> mask_url("redis://user:secret@host:6379")
'redis://user:***@host:6379'
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streamer.core.settings import TrainerSettings
from streamer.errors import ConfigError

__all__ = ["ENGINE_KNOBS", "convert", "convert_knob", "convert_value", "engine_kind", "field_type", "mask_url"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def mask_url(url: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host``."""
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def field_type(spec: dataclasses.Field) -> type:
    return type(spec.default)


#: Engine knobs (:class:`streamer.core.settings.TrainerSettings`) passed through to ``Trainer(**knobs)``.
ENGINE_KNOBS = {spec.name: spec for spec in dataclasses.fields(TrainerSettings)}


def engine_kind(spec: dataclasses.Field) -> type:
    """int/float/bool of an engine knob (``int | None`` knobs are int; 'none' means None)."""
    return type(spec.default) if spec.default is not None else (int if "int" in str(spec.type) else float)


def convert_knob(name: str, value: Any, source: str) -> Any:
    if name not in ENGINE_KNOBS:
        raise ConfigError(f"unknown engine knob {name!r} from {source}")
    spec = ENGINE_KNOBS[name]
    if (spec.default is None or "None" in str(spec.type)) and (value is None or str(value).strip().lower() in ("none", "")):
        return None
    return convert_value(name, engine_kind(spec), None, value, source)


def convert(spec: dataclasses.Field, value: Any, source: str) -> Any:
    return convert_value(spec.name, field_type(spec), spec.metadata["choices"], value, source)


def convert_value(name: str, kind: type, choices: tuple | None, value: Any, source: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(value)
            return lowered in _TRUE
        converted = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} from {source}: expected {kind.__name__}, got {value!r}") from None
    if choices and converted not in choices:
        raise ConfigError(f"{name} from {source}: {converted!r} is not one of {', '.join(choices)}")
    return converted
