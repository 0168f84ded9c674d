"""The daemon's settings: one frozen object, the only place ``STREAMER_*`` env and the TOML file are read.

Precedence, highest first: command-line flags > environment (``STREAMER_<NAME>``) > TOML file
(``--config`` / ``STREAMER_CONFIG``; keys are field names, engine knobs under ``[engine]``) > defaults.
Engine knobs (``--vector-size``, ``--seed``, ... — every field of ``TrainerSettings``) follow the same
precedence and are passed to ``Trainer(**settings.engine_knobs)``.
Every field carries its help text, so ``streamer run --help`` documents every option and its default.

>>> settings = load_settings(flags={"topic": "clicks"}, environ={"STREAMER_FLUSH_INTERVAL": "0.1"})
>>> settings.topic, settings.flush_interval, settings.dead_letter_topic
('clicks', 0.1, 'clicks.dlq')
>>> "hunter2" in repr(load_settings(flags={"redis_password": "hunter2"}))
False
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.config_values import ENGINE_KNOBS, convert, convert_knob, engine_kind, field_type, mask_url
from streamer.core.settings import TrainerSettings
from streamer.errors import ConfigError

__all__ = ["ENGINE_KNOBS", "ENV_PREFIX", "Settings", "add_arguments", "load_settings", "settings_from_args"]

ENV_PREFIX = "STREAMER_"


def _option(default: Any, help: str, *, secret: bool = False, choices: tuple | None = None) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret, "choices": choices})


@dataclass(frozen=True)
class Settings:
    """Everything ``streamer run`` can be told. Build it with :func:`load_settings`."""

    # Kafka
    bootstrap_servers: str = _option("localhost:9092", "Kafka bootstrap servers, comma separated")
    topic: str = _option("events", "topic of interaction events (JSON, keyed by user)")
    catalog_topic: str = _option("catalog", "topic of catalog upserts/retires ('' = none)")
    dlq_topic: str = _option("", "dead-letter topic ('' = <topic>.dlq)")
    group: str = _option("streamer", "Kafka consumer group")
    group_instance_id: str = _option("", "static group membership id ('' = dynamic membership)")
    client_id: str = _option("streamer", "Kafka client id")
    auto_offset_reset: str = _option("earliest", "where a group without offsets starts", choices=("earliest", "latest"))
    session_timeout_ms: int = _option(10000, "consumer group session timeout (ms)")
    heartbeat_interval_ms: int = _option(3000, "consumer group heartbeat interval (ms)")
    join_timeout: float = _option(0.0, "seconds subscribed without any assigned partition after which the group "
                                  "counts as wedged: the daemon deletes the group and joins again "
                                  "(0 = 3 x session timeout)")
    max_poll_records: int = _option(5000, "most records taken per poll")
    fetcher: str = _option("process", "where Kafka records are fetched and unpacked: 'process' = a child process "
                           "on another core while the loop learns; 'inline' = in the daemon's loop (one core)",
                           choices=("process", "inline"))
    security_protocol: str = _option("PLAINTEXT", "Kafka security protocol",
                                     choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    sasl_mechanism: str = _option("", "SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 ('' = none)")
    sasl_username: str = _option("", "SASL user name")
    sasl_password: str = _option("", "SASL password (never logged)", secret=True)
    ssl_cafile: str = _option("", "CA bundle for Kafka TLS")
    ssl_certfile: str = _option("", "client certificate for Kafka TLS")
    ssl_keyfile: str = _option("", "client key for Kafka TLS")
    ssl_password: str = _option("", "password of the Kafka TLS key (never logged)", secret=True)
    # Redis
    redis_url: str = _option("redis://localhost:6379/0", "Redis URL (redis:// or rediss://)", secret=False)
    redis_username: str = _option("", "Redis ACL user name ('' = from the URL or default)")
    redis_password: str = _option("", "Redis password (never logged)", secret=True)
    redis_tls: bool = _option(False, "use TLS to Redis (also implied by rediss://)")
    redis_timeout: float = _option(2.0, "seconds a Redis call may take (socket timeout) before it fails and is "
                                        "retried later; the loop never waits for Redis")
    redis_tls_ca_certs: str = _option("", "CA bundle for Redis TLS")
    redis_tls_certfile: str = _option("", "client certificate for Redis TLS")
    redis_tls_keyfile: str = _option("", "client key for Redis TLS")
    namespace: str = _option("i2v", "Redis key namespace ({ns}:item:{id}, ...)")
    create_index: bool = _option(False, "create the vector-search index (FT.CREATE) when the server has it")
    # Publishing cadence
    flush_interval: float = _option(0.2, "seconds between flushes of changed vectors to Redis")
    flush_items: int = _option(20000, "flush early once this many items are dirty")
    neighbours_interval: float = _option(0.5, "seconds between refreshes of the due neighbour lists (every turn of "
                                         "the loop when it has spare time)")
    neighbours_budget: float = _option(0.1, "most seconds one refresh spends writing neighbour lists; the rest stay "
                                       "due (catalog upserts first, then lists waiting longer than publish_max_age, "
                                       "then the most changed items)")
    neighbours_count: int = _option(20, "neighbours kept per item in {ns}:nn:{id} (0 = off)")
    neighbours_batch: int = _option(100000, "most neighbour lists chosen per refresh (the time budget usually ends "
                                    "a refresh first)")
    publish_threshold: float = _option(0.02, "publish (and re-list) an item when its served vector moved more than "
                                       "this fraction of its length since it was last published (0 = every change); "
                                       "the rest goes once the daemon is idle: 0.02 cut item writes per learned "
                                       "event 10.4 -> 3.9 at the same served HR@10")
    publish_max_age: float = _option(30.0, "an item that changed at all is published at least every this many "
                                     "seconds, moved or not")
    user_ttl: float = _option(86400.0, "seconds a user vector lives in Redis (0 = do not publish users)")
    # Spare-time work
    replay_mode: str = _option("spare", "when the engine replays recent pairs (replay_passes): 'spare' = inline "
                               "while the loop keeps up; under load only interleaved_passes during learning, "
                               "the owed rest (drawn from the pairs learned meanwhile) paid when the loop has "
                               "spare time; 'inline' = always during learning, as in-process learn()",
                               choices=("spare", "inline"))
    replay_slice: float = _option(0.02, "most seconds of owed replay per spare turn of the loop (replay_mode=spare)")
    replay_threads: int = _option(1, "threads paying owed replay in spare time, when the loop has nothing else to do "
                                  "(0 = every core numba uses: faster, but served HR@10 measured 0.001-0.002 lower "
                                  "on MovieLens; 1 = the engine's one-thread path)")
    # Durability
    checkpoint_dir: str = _option("streamer-state", "directory of the engine checkpoint and its offsets")
    checkpoint_interval: float = _option(30.0, "seconds between checkpoints (offsets are committed after each)")
    compact_ratio: float = _option(1.0, "write a new base snapshot (in the background) once the delta segments "
                                   "after the last one reach this fraction of its size")
    lease_ttl: float = _option(10.0, "seconds the namespace lease lives unless renewed")
    shutdown_timeout: float = _option(30.0, "seconds a graceful stop may take before the process exits anyway")
    reset_model: bool = _option(False, "when no checkpoint is found but the group has committed offsets, start a new "
                                "model from the topics' beginning and delete the namespace's old vectors (without "
                                "it the daemon refuses to start); ignored when a checkpoint is found")
    # Validation
    max_message_bytes: int = _option(1_000_000, "larger messages go to the dead-letter topic")
    max_future_seconds: float = _option(86400.0, "events with ts further in the future are dead letters")
    # Operating
    metrics_port: int = _option(0, "port of /metrics (Prometheus), /healthz (liveness) and /readyz (readiness) "
                                "(0 = off)")
    stall_timeout: float = _option(60.0, "seconds without progress of the main loop after which /healthz says "
                                   "not live and /readyz not ready")
    status_interval: float = _option(5.0, "seconds between status lines in the log")
    log_level: str = _option("INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    # Live quality (docs/live-quality.md)
    live_sample_rate: float = _option(0.05, "share of live events scored before they are learned: is the next item "
                                      "of the session in the published top-10 of the previous one? (0 = off)")
    live_window: int = _option(10000, "scored events in the sliding window of streamer_live_hit_rate")
    live_shadow_items: int = _option(20000, "most items the co-occurrence shadow keeps counts for (0 = no shadow)")
    live_shadow_pairs: int = _option(50, "partners kept per item by the co-occurrence shadow (at most twice this)")
    live_sessions: int = _option(100000, "most user sessions the live check tracks (least recently seen dropped)")
    engine: tuple[tuple[str, Any], ...] = _option((), "engine knobs (TOML table [engine]; flags below)")

    def __post_init__(self) -> None:
        positive = ("flush_interval", "neighbours_interval", "checkpoint_interval", "lease_ttl",
                    "shutdown_timeout", "status_interval", "replay_slice", "compact_ratio", "neighbours_budget", "publish_max_age", "flush_items", "neighbours_batch",
                    "max_message_bytes", "session_timeout_ms", "heartbeat_interval_ms", "max_poll_records",
                    "stall_timeout", "redis_timeout")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("metrics_port", "neighbours_count", "user_ttl", "max_future_seconds", "join_timeout",
                     "publish_threshold", "replay_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.topic:
            raise ConfigError("topic must not be empty")
        self._check_live()

    def _check_live(self) -> None:
        if not 0.0 <= self.live_sample_rate <= 1.0:
            raise ConfigError(f"live_sample_rate must be between 0 and 1, got {self.live_sample_rate!r}")
        for name in ("live_window", "live_shadow_pairs", "live_sessions"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.live_shadow_items < 0:
            raise ConfigError(f"live_shadow_items must be >= 0, got {self.live_shadow_items!r}")

    @property
    def group_join_timeout(self) -> float:
        """Seconds without a partition that mean a wedged group (``join_timeout`` or 3 x session timeout)."""
        return self.join_timeout or 3 * self.session_timeout_ms / 1000.0

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.topic}.dlq"

    @property
    def topics(self) -> list[str]:
        return [self.topic] + ([self.catalog_topic] if self.catalog_topic else [])

    @property
    def engine_knobs(self) -> dict[str, Any]:
        return dict(self.engine)

    def __repr__(self) -> str:
        shown = []
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.metadata["secret"] and value:
                value = "***"
            elif spec.name == "redis_url":
                value = mask_url(value)
            shown.append(f"{spec.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def load_settings(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                  config_path: str | Path | None = None) -> Settings:
    """Merge defaults < TOML < env < flags into one :class:`Settings` (unknown keys are errors)."""
    flags = dict(flags or {})
    environ = os.environ if environ is None else environ
    path = config_path or flags.pop("config", None) or environ.get(f"{ENV_PREFIX}CONFIG")
    from_file = _read_toml(str(path)) if path else {}
    names = {spec.name: spec for spec in dataclasses.fields(Settings) if spec.name != "engine"}
    unknown = set(from_file) - set(names) - {"engine"}
    if unknown:
        raise ConfigError(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
    file_knobs = from_file.pop("engine", {})
    if not isinstance(file_knobs, Mapping):
        raise ConfigError(f"[engine] in {path} must be a table")
    layers = [(f"config file {path}", from_file, file_knobs)]
    layers.append(("environment", *_split(lambda name: environ.get(f"{ENV_PREFIX}{name.upper()}"), names)))
    layers.append(("command line", *_split(flags.get, names)))
    chosen: dict[str, Any] = {}
    knobs: dict[str, Any] = {}
    for source, values, engine_values in layers:
        for name, value in values.items():
            chosen[name] = convert(names[name], value, source)
        for name, value in engine_values.items():
            knobs[name] = convert_knob(name, value, source)
    TrainerSettings(**knobs)  # validate now: a bad knob is a configuration error at start-up
    return Settings(**chosen, engine=tuple(sorted(knobs.items())))


def _split(lookup, names) -> tuple[dict[str, Any], dict[str, Any]]:
    """Daemon settings and engine knobs present in one source (``lookup(name)`` is None when absent)."""
    values = {name: lookup(name) for name in names if lookup(name) is not None}
    knobs = {name: lookup(name) for name in ENGINE_KNOBS if lookup(name) is not None}
    return values, knobs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting; the help shows the default and the environment variable."""
    parser.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                        help=f"TOML file of settings (env {ENV_PREFIX}CONFIG)")
    for spec in dataclasses.fields(Settings):
        flag = "--" + spec.name.replace("_", "-")
        default = "" if spec.metadata["secret"] else spec.default
        text = f"{spec.metadata['help']} (default: {default!r}; env {ENV_PREFIX}{spec.name.upper()})"
        text = text.replace("%", "%%")
        if spec.name == "engine":
            continue
        if field_type(spec) is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(flag, type=field_type(spec), default=argparse.SUPPRESS, help=text,
                                choices=spec.metadata["choices"], metavar=spec.name.upper())
    engine = parser.add_argument_group("engine knobs", "passed to streamer.Trainer; a checkpoint keeps its own")
    for name, spec in ENGINE_KNOBS.items():
        kind = engine_kind(spec)
        text = f"engine {name} (default: {spec.default!r}; env {ENV_PREFIX}{name.upper()})"
        if kind is bool:
            engine.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
        else:
            engine.add_argument("--" + name.replace("_", "-"), default=argparse.SUPPRESS, metavar=name.upper(),
                                help=text)


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings for parsed ``streamer run`` arguments (flags given on the command line win)."""
    return load_settings(flags=vars(args), environ=environ)
