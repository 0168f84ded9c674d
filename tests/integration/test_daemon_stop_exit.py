"""How a stop ends (issue 16 item 9): a SIGTERM during start-up stops the daemon cleanly (rc 0, not -15),
and a stop whose final checkpoint fails (a real ENOSPC) exits non-zero and says so."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.integration.daemon_support import (
    FAST_GROUP, DaemonThread, event_value, manifest_offsets, produce, settings_for, spawn_daemon, wait_for,
)

pytestmark = pytest.mark.integration


def _catches_sigterm(pid: int) -> bool:
    """SIGTERM is in the process's caught-signal mask (/proc/PID/status SigCgt): a Python handler is set."""
    with open(f"/proc/{pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("delay", ["first handler", 1.0])
def test_a_sigterm_during_start_up_stops_the_daemon_cleanly(kafka_bootstrap, redis_url, redis_client, make_topic,
                                                            unique_name, tmp_path, delay):
    topic = make_topic(partitions=1)
    flags = dict(bootstrap_servers=kafka_bootstrap, redis_url=redis_url, namespace=unique_name, topic=topic,
                 catalog_topic=f"{topic}-catalog", group=f"{unique_name}-group", checkpoint_dir=tmp_path / "state",
                 vector_size=8, **FAST_GROUP)
    log = tmp_path / "daemon.log"
    process = spawn_daemon(flags, log)
    if delay == "first handler":  # the earliest moment a program can act on it (streamer/__main__.py's first lines)
        wait_for(lambda: _catches_sigterm(process.pid), 10, "a SIGTERM handler", interval=0.001)
    else:
        time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "stopped exit_code=0" in text


def test_a_final_checkpoint_that_fails_with_enospc_exits_non_zero(kafka_bootstrap, redis_url, redis_client, make_topic,
                                                                   unique_name, tmp_path, caplog):
    topic = make_topic(partitions=1)
    make_topic(partitions=1, name=f"{topic}-catalog")
    state = tmp_path / "state"
    settings = settings_for(kafka_bootstrap, redis_url, unique_name, topic, state, vector_size=8)
    now = time.time()
    events = [(f"u{index % 7}".encode(), event_value(f"u{index % 7}", f"i{index % 31}", now - 600 + index))
              for index in range(600)]
    with DaemonThread(settings) as running:
        produce(kafka_bootstrap, topic, events[:300])
        wait_for(lambda: manifest_offsets(state).get((topic, 0)) == 300, 60, "a first checkpoint")
        # the manifest's temporary file of this process now lands on a full device: writes fail with ENOSPC
        os.symlink("/dev/full", state / f".manifest.json.{os.getpid()}.tmp")
        produce(kafka_bootstrap, topic, events[300:])
        wait_for(lambda: running.daemon.active.engine.event_count == len(events), 60, "the rest learned")
        running.stop()
    assert running.exit_code == 1
    assert manifest_offsets(state).get((topic, 0)) == 300  # the old checkpoint stays valid
    assert "final_checkpoint_failed" in caplog.text and "No space left on device" in caplog.text
