"""SIGINT, SIGTERM and SIGHUP for commands that start processes: stop what was started, say so, exit.

``streamer demo`` and ``ops/stack.py up`` register what they start in a :class:`Stops`. The first stop
signal runs the registered stops in reverse order from the signal handler — it stops child processes and
removes folders, and never unwinds through library code the main thread was in (a Kafka client
interrupted while it holds a lock could hang its own clean-up) — prints one line and exits with
``128 + signal`` (or the command's own code). A signal that arrives while the command is already stopping
something on its normal path (:meth:`Stops.cleaning_up`) waits until that is done; later signals are noted
and ignored, so a second Ctrl-C cannot cut the clean-up short.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Callable

__all__ = ["SIGNALS", "Stops"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stops:
    """``with Stops("streamer demo") as stops:`` — ``stops.add(name, action)`` for everything started;
    ``action()`` stops it and returns a phrase for the final line (``"stopped the daemon (exit code 0)"``)."""

    def __init__(self, program: str, exit_code: int | None = None):
        self.program, self.exit_code = program, exit_code
        self._actions: list[tuple[str, Callable[[], str | None]]] = []
        self._cleaning, self._deferred, self._stopping = 0, None, False
        self._previous: dict = {}

    def __enter__(self) -> "Stops":
        self._previous = {number: signal.signal(number, self._handle) for number in SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def add(self, name: str, action: Callable[[], str | None]) -> None:
        self._actions.append((name, action))

    def remove(self, name: str) -> None:
        """The command stopped ``name`` itself (inside :meth:`cleaning_up`)."""
        self._actions = [(known, action) for known, action in self._actions if known != name]

    @contextmanager
    def cleaning_up(self):
        """A stop on the normal path: a signal meanwhile is handled once it is done."""
        self._cleaning += 1
        try:
            yield
        finally:
            self._cleaning -= 1
            if not self._cleaning and self._deferred is not None:
                self._stop_everything(self._deferred)

    def _handle(self, signum: int, _frame) -> None:
        if self._stopping or self._deferred is not None:
            _write(f"{self.program}: {signal.Signals(signum).name} again: still stopping what was started\n")
            return
        if self._cleaning:
            self._deferred = signum
            return
        self._stop_everything(signum)

    def _stop_everything(self, signum: int) -> None:
        self._stopping = True
        phrases = [action() for _, action in reversed(self._actions)]
        said = "; ".join(phrase for phrase in phrases if phrase) or "nothing had been started"
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, RuntimeError, ValueError):  # a reentrant flush: the main thread was writing
                pass
        _write(f"\n{self.program}: {signal.Signals(signum).name}: {said}; nothing is left running\n")
        os._exit(self.exit_code if self.exit_code is not None else 128 + signum)


def _write(text: str) -> None:
    """Straight to file descriptor 1: the main thread may hold stdout's buffer lock."""
    try:
        os.write(1, text.encode())
    except OSError:
        pass
