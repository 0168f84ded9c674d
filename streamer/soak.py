"""``streamer soak``: the daemon under seeded random faults for a bounded time, then an audit.

Its own local stack (a Tansu broker and a redis-server it may restart on the same ports) and a real
``streamer run`` process. Each round produces a chunk of good events with some bad and oversized
messages among them, lets the daemon learn for a random moment, then applies one fault, the kinds taken
in a seeded random order, every kind once per cycle:

- ``kill``: kill -9 of the daemon (its orphaned fetch process leaves the group, maybe while joining);
- ``term``: SIGTERM, which must end the daemon with exit code 0;
- ``redis_restart``: a new, empty redis-server on the same port (the daemon must publish everything again);
- ``broker_restart``: a new broker on the same port, which has lost the topics; they are created again and
  the next events go to the new topics. The broker loses what it held, so the soak first waits until the
  daemon has checkpointed every event produced so far (a broker losing data is not the daemon's fault).

At the end every produced event must be learned exactly once by the final state (its event count and
every item's count equal what was produced: nothing skipped, nothing learned twice) and every item must
be in Redis. The checkpoint is the daemon's own (:class:`streamer.io.state_store.CheckpointStore`).
"""

from __future__ import annotations

import collections
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamer.localstack import LocalStack
from streamer.soak_support import Auditor, DaemonProcess, Producer, create_topics

__all__ = ["FAULTS", "SoakPlan", "SoakResult", "run_soak"]

FAULTS = ("kill", "term", "redis_restart", "broker_restart")


@dataclass(frozen=True)
class SoakPlan:
    seconds: float = 90.0  # faults are started until this much time has passed; the audit follows
    seed: int = 1
    faults: tuple[str, ...] = FAULTS
    events_per_round: int = 1500
    bad_per_round: int = 4  # of each bad kind: not JSON, missing fields, wrong types, a JSON array with a bad element
    oversized: bool = True  # each round also a 900 KB value that is not JSON and an event with an 800 KB item id
    settle_seconds: float = 120.0  # most seconds the audit waits for the daemon to catch up
    start_seconds: float = 600.0  # most seconds the first start may take (a cold kernel compile: 36-96 s measured)


@dataclass
class SoakResult:
    rounds: int = 0
    faults: collections.Counter = field(default_factory=collections.Counter)
    produced: int = 0
    bad_messages: int = 0
    learned: int | None = None
    items_produced: int = 0
    items_miscounted: int = 0
    items_missing_in_redis: int = 0
    final_exit_code: int | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        faults = ", ".join(f"{kind} {self.faults[kind]}" for kind in sorted(self.faults)) or "none"
        lines = [f"soak: {'OK' if self.ok else 'FAILED'} after {self.seconds:.0f} s, {self.rounds} rounds",
                 f"faults: {faults}",
                 f"events produced: {self.produced}, learned by the final state: {self.learned}",
                 f"bad or oversized messages produced: {self.bad_messages}",
                 f"items: {self.items_produced}, count differs from produced: {self.items_miscounted}, "
                 f"missing in Redis: {self.items_missing_in_redis}",
                 f"final SIGTERM exit code: {self.final_exit_code}"]
        return "\n".join(lines + [f"problem: {problem}" for problem in self.problems])


def run_soak(plan: SoakPlan, workdir: Path, say=print) -> SoakResult:
    """Run the soak in ``workdir`` (state, logs); returns its result (``result.ok``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    chooser = random.Random(plan.seed)
    result, began = SoakResult(), time.monotonic()
    stack = LocalStack(log_dir=workdir / "stack")
    stack.start()
    try:
        topic = "soak-events"
        create_topics(stack.bootstrap_servers, topic, f"{topic}-catalog")
        producer = Producer(stack, topic, chooser)
        daemon = DaemonProcess(stack, topic, workdir)
        auditor = Auditor(workdir / "state", stack, daemon)
        daemon.start()
        # the first start compiles the kernels cold (minutes on a loaded machine): a broker restart before the
        # daemon subscribed would lose the events the broker holds, which is no fault of the daemon's
        if not auditor.wait_started(plan.start_seconds):
            result.problems.append(f"the daemon wrote no checkpoint within {plan.start_seconds:.0f} s of its first start")
        schedule: list[str] = []
        while time.monotonic() - began < plan.seconds:
            if not schedule:
                schedule = chooser.sample(list(plan.faults), len(plan.faults))
            fault = schedule.pop()
            producer.produce_round(plan.events_per_round, plan.bad_per_round, plan.oversized)
            time.sleep(chooser.uniform(0.2, 2.0))
            say(f"round {result.rounds + 1}: {fault} (produced {producer.produced} events so far)")
            _apply(fault, stack, daemon, producer, auditor, plan, result, topic)
            result.rounds += 1
            result.faults[fault] += 1
        auditor.finish(producer, plan.settle_seconds, result)
        producer.close()
    finally:
        _quietly_stop(locals().get("daemon"))
        stack.stop()
    result.seconds = time.monotonic() - began
    return result


def _apply(fault: str, stack, daemon, producer, auditor, plan: SoakPlan, result: SoakResult, topic: str) -> None:
    if fault == "kill":
        daemon.kill()
        daemon.start()
    elif fault == "term":
        code = daemon.term()
        if code != 0:
            result.problems.append(f"SIGTERM in round {result.rounds + 1} ended the daemon with exit code {code}")
        daemon.start()
    elif fault == "redis_restart":
        stack.restart_redis()
    elif fault == "broker_restart":
        if not auditor.wait_learned(producer.produced, plan.settle_seconds):
            result.problems.append(f"round {result.rounds + 1}: the daemon did not catch up before the broker restart")
        stack.restart_broker()
        create_topics(stack.bootstrap_servers, topic, f"{topic}-catalog")
        producer.reconnect()
    else:
        raise ValueError(f"unknown fault {fault!r}")


def _quietly_stop(daemon) -> None:
    if daemon is not None:
        daemon.kill()
