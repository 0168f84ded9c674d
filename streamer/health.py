"""Liveness and readiness of the daemon, and the HTTP endpoint that serves them with ``/metrics``.

:class:`Health` holds named conditions (each ``ok`` with a reason when it is not) and the time the main
loop last made progress. Any part of the daemon can add or change a condition::

    health.set("group", ok=False, reason="no partition assigned for 30 s")

- **live** (``/healthz``): the loop made progress within ``stall_timeout`` seconds — or it is inside a
  known long step (``with health.long_step("compiling kernels"):``), which is reported as such.
  A restart helps a daemon that is not live.
- **ready** (``/readyz``): live, not inside a long step, and every condition ok. The daemon sets
  ``lease`` (this instance holds the namespace lease: a standby is not ready), ``group`` (the consumer
  group is joined and partitions are assigned), ``engine`` (the kernels are compiled) and ``running``
  (false while stopping).

Both answer ``200`` or ``503`` with a JSON body. The clock is injected, so the logic is tested without
sleeping.
"""

from __future__ import annotations

import errno
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import make_wsgi_app

from streamer.errors import ConfigError

__all__ = ["Condition", "Health", "HealthServer", "serve"]


@dataclass(frozen=True)
class Condition:
    ok: bool
    reason: str
    since: float  # clock time of the last change


class Health:
    """Named readiness conditions and a progress beat; thread-safe (the HTTP server reads it)."""

    def __init__(self, stall_timeout: float = 60.0, clock=time.monotonic):
        self.stall_timeout = stall_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._conditions: dict[str, Condition] = {}
        self._last_progress = clock()
        self._step: str | None = None

    def set(self, name: str, ok: bool, reason: str = "") -> None:
        """Set condition ``name``; ``reason`` says why it is not ok (kept only while it is not)."""
        with self._lock:
            current = self._conditions.get(name)
            reason = "" if ok else (reason or "not ok")
            if current is None or current.ok != ok or current.reason != reason:
                self._conditions[name] = Condition(ok, reason, self._clock())

    def condition(self, name: str) -> Condition | None:
        with self._lock:
            return self._conditions.get(name)

    def beat(self) -> None:
        """The main loop made progress (a plain store: cheap enough for every turn of the loop)."""
        self._last_progress = self._clock()

    @contextmanager
    def long_step(self, name: str):
        """A step known to take long (compiling kernels, loading a checkpoint): live, not ready."""
        previous, self._step = self._step, name
        try:
            yield
        finally:
            self._step = previous
            self.beat()

    def liveness(self) -> tuple[bool, dict]:
        silent = self._clock() - self._last_progress
        step = self._step
        live = step is not None or silent <= self.stall_timeout
        body = {"live": live, "seconds_since_progress": round(silent, 3), "stall_timeout": self.stall_timeout,
                "long_step": step}
        if not live:
            body["reason"] = (f"the main loop made no progress for {silent:.1f} s "
                              f"(stall timeout {self.stall_timeout:g} s)")
        return live, body

    def readiness(self) -> tuple[bool, dict]:
        live, live_body = self.liveness()
        with self._lock:
            conditions = dict(self._conditions)
        reasons = [f"{name}: {condition.reason}" for name, condition in sorted(conditions.items())
                   if not condition.ok]
        if not live:
            reasons.insert(0, live_body["reason"])
        elif live_body["long_step"] is not None:
            reasons.insert(0, f"busy: {live_body['long_step']}")
        ready = not reasons
        body = {"ready": ready, "reasons": reasons, "live": live_body,
                "conditions": {name: {"ok": condition.ok, "reason": condition.reason}
                               for name, condition in sorted(conditions.items())}}
        return ready, body


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # probes every few seconds would flood the log
        pass


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` (also ``/``) on one port, in a daemon thread."""

    def __init__(self, port: int, health: Health, registry, host: str = "0.0.0.0"):
        self.health = health
        self._metrics_app = make_wsgi_app(registry)
        try:
            self._server = make_server(host, port, self._app, server_class=_ThreadingServer,
                                       handler_class=_QuietHandler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ConfigError(f"metrics port {port} is already in use "
                                  "(choose another with --metrics-port or STREAMER_METRICS_PORT)") from None
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from None
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)
        self._thread.start()

    def _app(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok, body = self.health.liveness() if path == "/healthz" else self.health.readiness()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [orjson.dumps(body)]
        return self._metrics_app(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(port: int, health: Health, registry) -> HealthServer | None:
    """Start the endpoint on ``port`` (0 = off); a busy port is a one-line :class:`ConfigError`."""
    return HealthServer(port, health, registry) if port else None


def probe(kind: str, port: int, host: str = "127.0.0.1", timeout: float = 3.0) -> tuple[bool, str]:
    """Ask a running daemon's ``/healthz`` (``kind="live"``) or ``/readyz`` (``"ready"``): (ok, body)."""
    import urllib.error
    import urllib.request

    url = f"http://{host}:{port}/{'healthz' if kind == 'live' else 'readyz'}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return True, response.read().decode()
    except urllib.error.HTTPError as error:  # 503: the body says why
        return False, error.read().decode()
    except OSError as error:
        return False, f"{url}: {error}"


def main(argv: list[str] | None = None) -> int:
    """``python -m streamer.health live|ready [PORT]`` — exit 0 when the daemon is live / ready.

    For container health checks; the port defaults to ``$STREAMER_METRICS_PORT`` (else 9100).
    """
    import os
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("live", "ready") or len(args) > 2:
        print("usage: python -m streamer.health live|ready [PORT]", file=sys.stderr)
        return 2
    port = int(args[1] if len(args) > 1 else os.environ.get("STREAMER_METRICS_PORT") or 9100)
    ok, body = probe(args[0], port)
    print(body)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
