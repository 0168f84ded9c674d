"""``streamer run``: the long-running daemon (Kafka → sessions → online Item2vec → Redis)."""

from __future__ import annotations

import argparse

from streamer import config

# Stop signals that arrived while the daemon's modules loaded (a second or two): kept, not fatal, so the
# daemon starts stopped and exits 0, as a supervisor that stops it at once expects. See cli.main.
from streamer import EARLY_SIGNALS  # noqa: E402 (the list streamer.__main__ records into, first thing)

HELP = "run the daemon: consume events from Kafka, learn, publish fresh vectors to Redis"
DESCRIPTION = (
    "Consume interaction events (and catalog updates) from Kafka, learn item vectors online and keep "
    "them fresh in Redis. Every option below can also be given as STREAMER_<NAME> in the environment "
    "or in a TOML file (--config); flags win over the environment, which wins over the file."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from streamer.app import Daemon
    from streamer.logs import configure_logging

    settings = config.settings_from_args(args)
    configure_logging(settings.log_level)
    daemon = Daemon(settings)
    daemon.install_signal_handlers()
    if EARLY_SIGNALS:
        daemon.request_stop()
    return daemon.run()
