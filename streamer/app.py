"""The daemon process: a standby until it holds the namespace lease, then the lease holder's loop.

:class:`Daemon` waits as a standby until it holds the namespace lease, then :class:`streamer.loop.ActiveLoop`
runs the loop (poll → decode → validate → learn → mark dirty → flush → checkpoint → commit) until a stop is
requested (SIGTERM/SIGINT) or the lease is lost; a lost lease sends it back to standby.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from streamer.config import Settings
from streamer.health import Health, serve
from streamer.io.backoff import Backoff
from streamer.io.lease import Lease
from streamer.io.redis_sink import FencedError, connect_redis
from streamer.keys import Keys
from streamer.logs import log_event
from streamer.loop import ActiveLoop
from streamer.metrics import Metrics

__all__ = ["Daemon"]

logger = logging.getLogger("streamer.daemon")


class Daemon:
    """``Daemon(settings).run()`` until :meth:`request_stop`; returns the process exit code."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.stopping = threading.Event()
        self.active: ActiveLoop | None = None
        self.exit_code = 0  # 1 when the final checkpoint of a stop failed
        self.health = Health(settings.stall_timeout)
        self.health.set("lease", False, "waiting for the namespace lease")
        self.health.set("running", True)

    def install_signal_handlers(self) -> None:
        def handle(signum, _frame):
            if self.stopping.is_set():
                log_event(logger, logging.ERROR, "forced_exit", signal=signal.Signals(signum).name)
                os._exit(1)
            log_event(logger, logging.INFO, "stop_requested", signal=signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def request_stop(self, watchdog: bool = True) -> None:
        """Stop polling, flush, checkpoint, commit; a watchdog ends the process after ``shutdown_timeout``."""
        if watchdog and not self.stopping.is_set():
            timer = threading.Timer(self.settings.shutdown_timeout, _give_up, args=(self.settings.shutdown_timeout,))
            timer.daemon = True
            timer.start()
        self.health.set("running", False, "stopping")
        self.stopping.set()

    def run(self) -> int:
        settings = self.settings
        log_event(logger, logging.INFO, "starting", settings=repr(settings))
        server = serve(settings.metrics_port, self.health, self.metrics.registry)
        if server is not None:
            log_event(logger, logging.INFO, "http_serving", address=f"0.0.0.0:{server.port}",
                      paths="/metrics /healthz /readyz")
        client = connect_redis(settings)
        lease = Lease(client, Keys(settings.namespace), settings.lease_ttl)
        backoff = Backoff("redis_unavailable")
        try:
            while not self.stopping.is_set():
                if not lease.wait(self._standing_by, on_retry=backoff.failed):
                    break
                backoff.reset()
                self._hold_lease(client, lease)
        finally:
            lease.release_within(settings.redis_timeout)  # a hung Redis does not hold up the stop
            client.close()
            if server is not None:
                server.close()
        log_event(logger, logging.INFO, "stopped", exit_code=self.exit_code)
        return self.exit_code

    def _standing_by(self) -> bool:
        """``Lease.wait``'s stop test, called while waiting for the lease: waiting is progress."""
        self.health.beat()
        if not self.stopping.is_set():
            self.health.set("lease", False,
                            "waiting for the namespace lease (a standby while another daemon holds it)")
        return self.stopping.is_set()

    def _hold_lease(self, client, lease: Lease) -> None:
        self.metrics.lease_held.set(1)
        self.health.set("lease", True)
        try:
            self.active = ActiveLoop(self, client, lease)
            self.active.run()
        except FencedError as error:
            log_event(logger, logging.ERROR, "lease_lost", error=str(error), note="back to standby")
        finally:
            self.metrics.lease_held.set(0)
            self.health.set("lease", False, "lease lost or released")
            self.health.set("group", False, "not consuming")
            self.active = None


def _give_up(seconds: float) -> None:
    log_event(logger, logging.ERROR, "shutdown_timeout", seconds=seconds, note="exiting without a clean stop")
    logging.shutdown()
    os._exit(3)
