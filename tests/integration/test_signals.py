"""SIGTERM, SIGINT (Ctrl-C) and SIGHUP to ``streamer demo`` and ``ops/stack.py up`` at several steps: every
process they started is gone afterwards, no temporary folder is left, the stop is one line, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.daemon_support import REPOSITORY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class Watched:
    """A command in its own process group, its output collected, its descendants recorded while it runs."""

    def __init__(self, command: list[str], tmp_path: Path):
        self.temp = tmp_path / "tmp"
        self.temp.mkdir()
        environment = {key: value for key, value in os.environ.items() if not key.startswith("STREAMER_")}
        environment.update(TMPDIR=str(self.temp), STREAMER_DATA_ROOT=os.environ.get("STREAMER_DATA_ROOT", ""),
                           STREAMER_STACK_STATE=str(tmp_path / "stack.json"), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(command, cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.seen: dict[int, str] = {}
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def record(self) -> None:
        pending = _children(self.process.pid)
        while pending:
            pid = pending.pop()
            started = _start_time(pid)
            if started is not None:
                self.seen.setdefault(pid, started)
                pending += _children(pid)

    def _watch(self) -> None:
        while self.process.poll() is None:
            self.record()
            time.sleep(0.05)

    def wait_for_line(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"exited before {text!r}:\n" + "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no {text!r} within {timeout:.0f} s:\n" + "\n".join(self.lines)
            time.sleep(0.05)

    def wait_for_child(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.seen:
            assert time.monotonic() < deadline, "no child process started:\n" + "\n".join(self.lines)
            self.record()

    def signal(self, number: int) -> None:
        self.record()
        if number == signal.SIGINT:  # as a terminal's Ctrl-C: to the whole foreground process group
            os.killpg(self.process.pid, number)
        else:
            self.process.send_signal(number)

    def finish(self, timeout: float = 120.0) -> str:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()  # its servers and daemon are tied to it: they get SIGTERM when it dies
            self.process.wait()
            raise AssertionError(f"did not stop within {timeout:.0f} s:\n" + "\n".join(self.lines)) from None
        time.sleep(0.2)
        output = "\n".join(self.lines)
        deadline = time.monotonic() + 10
        left = {pid for pid, started in self.seen.items() if _start_time(pid) == started}
        while left and time.monotonic() < deadline:  # a child's own children may take a moment to exit
            time.sleep(0.1)
            left = {pid for pid in left if _start_time(pid) == self.seen[pid]}
        assert self.seen, "no child process was ever seen: the test watched nothing"
        assert not left, f"left running: {[Path(f'/proc/{pid}/cmdline').read_bytes() for pid in left]}\n{output}"
        assert not list(self.temp.iterdir()), f"temporary folders left: {list(self.temp.iterdir())}\n{output}"
        assert "Traceback" not in output, output
        return output


DEMO_POINTS = [  # (signal, the output line after which it is sent, demo options)
    (signal.SIGTERM, "== 1/6", ["--limit", "5000"]),
    (signal.SIGINT, "== 3/6", ["--limit", "20000", "--rate", "2000"]),
    (signal.SIGHUP, "== 4/6", ["--limit", "5000"]),
    (signal.SIGINT, "== 6/6", ["--limit", "5000"]),
]


@pytest.mark.parametrize("number, after, options", DEMO_POINTS, ids=[f"{signal.Signals(n).name}-after-{a[3:]}"
                                                                       for n, a, _ in DEMO_POINTS])
def test_a_stop_signal_to_the_demo_stops_everything_it_started(number, after, options, tmp_path):
    demo = Watched([sys.executable, "-m", "streamer", "demo", *options], tmp_path)
    demo.wait_for_line(after)
    if after == "== 1/6":
        demo.wait_for_child()  # while the stack starts: the broker is spawned, redis-server maybe not yet
    else:
        demo.wait_for_line("daemon: pid")
    demo.signal(number)
    output = demo.finish()
    assert demo.process.returncode == 128 + number, output
    name = signal.Signals(number).name
    stops = [line for line in output.splitlines() if line.startswith(f"streamer demo: {name}: ")]
    assert len(stops) == 1 and stops[0].endswith("removed its temporary folder; nothing is left running"), output
    assert "stopped the broker and redis-server" in stops[0], output
    if after != "== 1/6":
        assert "stopped the daemon (exit code 0)" in stops[0], output


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda number: signal.Signals(number).name)
def test_a_stop_signal_to_stack_up_stops_the_broker_and_redis(number, tmp_path):
    stack = Watched([sys.executable, "ops/stack.py", "up"], tmp_path)
    stack.wait_for_line("Ctrl-C stops both.")
    stack.signal(number)
    output = stack.finish()
    assert stack.process.returncode == 0, output
    assert output.splitlines()[-1] == (f"stack.py: {signal.Signals(number).name}: stopped the broker and redis-server; "
                                       "nothing is left running")
    assert len(stack.seen) == 2, "the broker and redis-server were watched"


def test_a_stop_signal_while_stack_up_starts_its_servers_leaves_nothing(tmp_path):
    stack = Watched([sys.executable, "ops/stack.py", "up"], tmp_path)
    stack.wait_for_child()  # the broker has been spawned, redis-server maybe not yet
    stack.signal(signal.SIGTERM)
    stack.finish()
