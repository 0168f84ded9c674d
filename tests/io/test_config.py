"""Settings: precedence flags > env > TOML > defaults, documented flags, masked secrets, engine knobs."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from streamer.config import ENGINE_KNOBS, Settings, add_arguments, load_settings, settings_from_args
from streamer.errors import ConfigError

REQUIRED_FLAGS = ["--bootstrap-servers", "--topic", "--catalog-topic", "--group", "--redis-url", "--namespace",
                  "--checkpoint-dir", "--flush-interval", "--metrics-port"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser)
    return parser


def test_defaults_are_documented_values():
    settings = load_settings(environ={})
    assert settings.topic == "events" and settings.catalog_topic == "catalog" and settings.namespace == "i2v"
    assert settings.dead_letter_topic == "events.dlq"
    assert 0 < settings.flush_interval <= 0.25
    assert settings.metrics_port == 0 and settings.engine_knobs == {}


def test_flags_beat_environment_beat_toml_beat_defaults(tmp_path):
    config = tmp_path / "streamer.toml"
    config.write_text('topic = "from-file"\ngroup = "file-group"\nnamespace = "file-ns"\n'
                      'flush_interval = 0.05\n[engine]\nvector_size = 48\nseed = 3\n')
    environ = {"STREAMER_CONFIG": str(config), "STREAMER_GROUP": "env-group", "STREAMER_NAMESPACE": "env-ns",
               "STREAMER_SEED": "4"}
    args = _parser().parse_args(["--namespace", "flag-ns", "--seed", "5"])
    settings = settings_from_args(args, environ=environ)
    assert settings.topic == "from-file"           # only in the file
    assert settings.group == "env-group"           # env beats file
    assert settings.namespace == "flag-ns"         # flag beats env and file
    assert settings.flush_interval == 0.05
    assert settings.engine_knobs == {"vector_size": 48, "seed": 5}
    assert settings.bootstrap_servers == "localhost:9092"  # default


def test_every_required_flag_has_an_environment_variable():
    for flag in REQUIRED_FLAGS:
        name = flag[2:].replace("-", "_")
        value = "7" if name in ("flush_interval", "metrics_port") else "x"
        from_env = load_settings(environ={f"STREAMER_{name.upper()}": value})
        from_flag = settings_from_args(_parser().parse_args([flag, value]), environ={})
        assert getattr(from_env, name) == getattr(from_flag, name) == type(getattr(from_env, name))(value)


def test_help_documents_every_setting_and_engine_knob_with_its_default():
    text = " ".join(_parser().format_help().split())
    for flag in REQUIRED_FLAGS:
        assert flag in text
    for spec in dataclasses.fields(Settings):
        if spec.name != "engine":
            assert f"--{spec.name.replace('_', '-')}" in text
            assert f"env STREAMER_{spec.name.upper()}" in text
    for name in ENGINE_KNOBS:
        assert f"--{name.replace('_', '-')}" in text
    assert "(default: 'redis://localhost:6379/0'; env STREAMER_REDIS_URL)" in text


def test_secrets_never_appear_in_repr():
    settings = load_settings(flags={"sasl_password": "kafka-secret", "redis_password": "redis-secret",
                                    "ssl_password": "key-secret", "redis_url": "redis://user:url-secret@host:6379/0"},
                             environ={})
    text = repr(settings) + str(settings)
    for secret in ("kafka-secret", "redis-secret", "key-secret", "url-secret"):
        assert secret not in text
    assert "redis://user:***@host:6379/0" in text
    assert settings.redis_password == "redis-secret"


@pytest.mark.parametrize("environ", [
    {"STREAMER_FLUSH_INTERVAL": "soon"}, {"STREAMER_FLUSH_INTERVAL": "0"}, {"STREAMER_METRICS_PORT": "-1"},
    {"STREAMER_CREATE_INDEX": "perhaps"}, {"STREAMER_SECURITY_PROTOCOL": "CARRIER_PIGEON"},
    {"STREAMER_VECTOR_SIZE": "0"}, {"STREAMER_TOPIC": ""},
])
def test_bad_values_are_config_errors(environ):
    with pytest.raises(ConfigError):
        load_settings(environ=environ)


def test_unknown_toml_keys_are_errors(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("flush_intervall = 1\n")
    with pytest.raises(ConfigError, match="flush_intervall"):
        load_settings(config_path=config, environ={})


def test_booleans_and_optional_engine_knobs_parse():
    settings = load_settings(environ={"STREAMER_CREATE_INDEX": "yes", "STREAMER_MAX_ITEMS": "none",
                                      "STREAMER_ITEM_TTL": "3600", "STREAMER_POPULARITY_HALF_LIFE": "none"})
    assert settings.create_index is True
    assert settings.engine_knobs == {"max_items": None, "item_ttl": 3600.0, "popularity_half_life": None}
    args = _parser().parse_args(["--no-create-index", "--no-dynamic-window"])
    assert settings_from_args(args, environ={"STREAMER_CREATE_INDEX": "1"}).create_index is False
    assert settings_from_args(args, environ={}).engine_knobs == {"dynamic_window": False}


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_settings(environ={}).topic = "other"
