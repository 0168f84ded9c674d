"""After a burst: how fast the daemon pays its replay debt in spare time, and what it writes to Redis meanwhile.

    python ops/bench_spare_replay.py [--events 300000] [--items 300000] [--seconds 30] [--profile]

On the local stack (Tansu + redis-server): a topic pre-filled with ``events`` Zipf-popular clicks over
``items`` ids (a burst), the real daemon in this process. Once it has learned every event (its replay
owed: ``replay_mode=spare``), the debt's fall over ``seconds`` gives the spare-time replay rate (draws/s);
Redis item writes (``streamer_items_published_total``) and neighbour lists written are counted per learned
event over the burst, and again per replayed draw in spare time. Then, the daemon stopped, the same engine
pays its debt alone for 5 s on one thread, then 5 s on two (chunks of ``REPLAY_CHUNK`` draws, as the loop
does): the most the loop could reach. ``--replay-threads N`` / ``--publish-threshold T`` run the daemon so. ``--profile`` samples the daemon loop's
stack every 5 ms (a thread reading ``sys._current_frames``) and prints where the spare time went.
Figures are taken on a shared machine: run it twice.

    python ops/bench_spare_replay.py --engine-only [--events 300000] [--rounds 3]

No stack, no daemon: the engine learns the burst in this process (``replay=False``, the daemon's engine
settings), then pays its debt on one thread in 3 s turns, the negatives from the noise tree and from the
alias table in alternation (``rounds`` of each): the sampler's share of a draw, both measured under the
same load.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # as the streamer command sets them
    os.environ.setdefault(_name, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as the streamer command sets it (numba's idle threads sleep)

import argparse  # noqa: E402
import collections  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from kafka import KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from streamer.app import Daemon  # noqa: E402
from streamer.spare_time import REPLAY_CHUNK  # noqa: E402
from streamer.config import load_settings  # noqa: E402
from streamer.localstack import LocalStack  # noqa: E402
from streamer.replay import encode_event  # noqa: E402


def burst(events: int, items: int, seed: int = 0):
    """``(key, value)`` messages: sessions of 2..20 clicks on Zipf(0.9)-popular items, a second apart."""
    random = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    drawn = random.choice(items, size=events, p=popularity / popularity.sum())
    position, session, ts = 0, 0, 1.0e9
    while position < events:
        length = int(random.integers(2, 21))
        user = f"user{session}"
        for item in drawn[position:position + length].tolist():
            yield user.encode(), encode_event(user, f"item{item}", ts)
            ts += 1.0
        position += length
        session += 1


class StackSampler:
    """Counts the innermost streamer/numpy frames of one thread, sampled every ``interval`` seconds."""

    def __init__(self, thread_id: int, interval: float = 0.005):
        self.thread_id, self.interval = thread_id, interval
        self.counts: collections.Counter = collections.Counter()
        self.steps: collections.Counter = collections.Counter()  # by the loop step below ``_loop``
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self.thread_id)
            path, step = [], "loop.py:_loop itself"
            while frame is not None:
                code = frame.f_code
                if "streamer" in code.co_filename:
                    name = f"{Path(code.co_filename).name}:{code.co_name}"
                    if code.co_name == "_loop":
                        break
                    step = name
                    if len(path) < 4:
                        path.append(name)
                frame = frame.f_back
            self.counts[" < ".join(path) or "?"] += 1
            self.steps[step if frame is not None else "outside the loop"] += 1

    def report(self, top: int = 12) -> list[str]:
        total = sum(self.counts.values()) or 1
        return ([f"{100 * count / total:5.1f}%  {path}" for path, count in self.counts.most_common(top)]
                + [f"{100 * count / total:5.1f}%  step {step}" for step, count in self.steps.most_common()])


def run(events: int, items: int, seconds: float, profile: bool, state: Path, extra: dict | None = None) -> dict:
    with LocalStack(log_dir=state / "stack") as stack:
        topic = "burst"
        admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, linger_ms=20, batch_size=256 * 1024)
        for key, value in burst(events, items):
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()
        settings = load_settings(flags=dict(
            bootstrap_servers=stack.bootstrap_servers, redis_url=stack.redis_url, topic=topic, catalog_topic="",
            group="burst-group", namespace="burst", checkpoint_dir=str(state / "checkpoint"),
            checkpoint_interval=600.0, status_interval=5.0, session_timeout_ms=3000, heartbeat_interval_ms=1000,
            **(extra or {})), environ={})
        daemon = Daemon(settings)
        runner = threading.Thread(target=daemon.run, name="daemon", daemon=True)
        runner.start()
        began = time.monotonic()
        while not (daemon.active and daemon.active.engine.event_count >= events):
            if time.monotonic() - began > 900:
                raise RuntimeError("the burst was not learned within 900 s")
            time.sleep(0.2)
        active, metrics = daemon.active, daemon.metrics
        learned_seconds = time.monotonic() - began
        published_burst = metrics.items_published._value.get()
        lists_burst = _lists_written(active)
        debt_before, published_before, lists_before = active.engine.replay_debt, published_burst, lists_burst
        spare_ages: list[float] = []  # of the lists written while the debt is paid (due -> written, seconds)
        replaying = [0.0]  # seconds the loop spent in _replay_owed (wall clock)
        replay_owed = active._replay_owed

        def timed_replay_owed():
            began = time.perf_counter()
            replay_owed()
            replaying[0] += time.perf_counter() - began

        active._replay_owed = timed_replay_owed
        steps = {name: [0.0] for name in ("_take_replayed", "_refresh_lists", "publish", "_settle")}
        for name, spent in steps.items():
            setattr(active, name, _timed(getattr(active, name), spent))
        poll_spent, taking, marking = [0.0], [0.0], [0.0]
        active.source.poll = _timed(active.source.poll, poll_spent)
        active.ingestor.take_changed = _timed(active.ingestor.take_changed, taking)
        active.sink.add_items = _timed(active.sink.add_items, marking)
        observe = metrics.observe_neighbours
        metrics.observe_neighbours = lambda ages: (spare_ages.extend(ages), observe(ages))[-1]
        cpu_before = _cpu_seconds()
        started = time.monotonic()
        sampler = StackSampler(runner.ident) if profile else None
        if sampler:
            sampler.__enter__()
        while time.monotonic() - started < seconds and active.engine.replay_debt:
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        if sampler:
            sampler.__exit__(None, None, None)
        debt_after, due_after = active.engine.replay_debt, len(active.sink.neighbours_due)
        cpu_after = _cpu_seconds()
        cpu_shares = {name: round((seconds - cpu_before.get(name, 0.0)) / (time.monotonic() - started), 2)
                      for name, seconds in cpu_after.items() if seconds - cpu_before.get(name, 0.0) > 0.05}
        replay_seconds = replaying[0]
        step_shares = {name: round(spent[0] / (time.monotonic() - started), 3) for name, spent in steps.items()}
        for name, spent in (("poll", poll_spent), ("take_changed", taking), ("sink.add_items", marking)):
            step_shares[name] = round(spent[0] / (time.monotonic() - started), 3)
        metrics.observe_neighbours = observe
        published_after, lists_after = metrics.items_published._value.get(), _lists_written(active)
        daemon.request_stop(watchdog=False)
        runner.join(120)
        engine, alone = active.engine, {}
        for threads in (1, 2):  # the same engine, no daemon around it: one core, then two
            drawn, alone_began = 0, time.monotonic()
            while engine.replay_debt and time.monotonic() - alone_began < 5.0:
                drawn += engine.replay(min(REPLAY_CHUNK, engine.replay_debt), threads=threads)
            alone[threads] = drawn / max(time.monotonic() - alone_began, 1e-9)
    paid = debt_before - debt_after
    return {"events": events, "items_in_model": active.engine.item_count, "learn_seconds": round(learned_seconds, 1),
            "debt_after_burst": int(debt_before), "spare_seconds": round(elapsed, 1),
            "replay_draws_per_second": round(paid / elapsed, 1),
            "loop_share_replaying": round(replay_seconds / elapsed, 3),
            "draws_per_second_replaying": round(paid / max(replay_seconds, 1e-9), 1),
            "loop_share_other_steps": step_shares, "cores_used_in_spare_time": cpu_shares,
            "engine_alone_draws_per_second": round(alone[1], 1),
            "engine_alone_draws_per_second_2_threads": round(alone[2], 1),
            "replay_threads": settings.replay_threads, "publish_threshold": settings.publish_threshold,
            "item_writes_per_learned_event": round(published_burst / events, 3),
            "item_writes_per_replayed_draw": round((published_after - published_before) / max(paid, 1), 4),
            "item_writes_in_spare_time": int(published_after - published_before),
            "lists_written_during_burst": lists_burst, "lists_written_in_spare_time": lists_after - lists_before,
            "list_age_in_spare_time_p50_p99_max": _quantiles(spare_ages), "lists_due_after": due_after,
            "profile": sampler.report() if sampler else None}


def engine_only(events: int, items: int, rounds: int, turn: float = 3.0) -> dict:
    """Draws/s of one thread paying the burst's debt, negatives from the tree and from the alias table in turns."""
    from streamer import Trainer
    from streamer.core.noise import alias_build
    from streamer.core.replay_debt import draw_replay

    settings = load_settings(flags=dict(catalog_topic=""), environ={})
    engine = Trainer(**settings.engine_knobs)
    began = time.monotonic()
    engine.learn(((key.decode(), *_fields(value)) for key, value in burst(events, items)), replay=False)
    learned, debt = time.monotonic() - began, engine.replay_debt
    arrays, knobs = engine._items.arrays, engine.settings
    source = engine._replay if engine._debt.log() is None else _logged(engine._debt.log())
    rates: dict[str, list[float]] = {"tree": [], "alias": []}
    alias_build(arrays.noise_weights[:4])  # compiled (or loaded) outside the timing
    built = time.perf_counter()
    table = alias_build(arrays.noise_weights)
    build_seconds = time.perf_counter() - built
    for sampler in (None, table):  # both kernels compiled outside the turns
        draw_replay(arrays, source, engine._hyper, engine._rng, 1, knobs.vector_size, knobs.negative, 1, sampler)
    for _round in range(rounds):
        for name, sampler in (("tree", None), ("alias", table)):
            drawn, turn_began = 0, time.monotonic()
            while time.monotonic() - turn_began < turn:
                drawn += draw_replay(arrays, source, engine._hyper, engine._rng, 1, knobs.vector_size, knobs.negative,
                                     REPLAY_CHUNK, sampler)
            rates[name].append(drawn / (time.monotonic() - turn_began))
    return {"events": events, "items_in_model": engine.item_count, "learn_seconds": round(learned, 1),
            "debt_after_burst": int(debt), "alias_table_columns": int(table.shape[0]),
            "alias_table_build_ms": round(1000 * build_seconds, 2),
            "tree_draws_per_second": [round(rate) for rate in rates["tree"]],
            "alias_draws_per_second": [round(rate) for rate in rates["alias"]],
            "alias_over_tree": round(float(np.median(rates["alias"]) / np.median(rates["tree"])), 3), "profile": None}


def _fields(value: bytes) -> tuple[str, float]:
    import orjson

    record = orjson.loads(value)
    return record["item"], record["ts"]


def _logged(pairs: np.ndarray):
    from streamer.core.learning import COUNTER_FILL, COUNTER_SIZE, ReplayArrays

    counters = np.zeros(COUNTER_SIZE, np.int64)
    counters[COUNTER_FILL] = len(pairs)
    return ReplayArrays(pairs, counters)


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process's threads (by Python thread name) and of its child processes (by
    command: redis-server, the broker, the fetcher), from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    seconds: dict[str, float] = collections.defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        seconds[names.get(int(task.name), "other threads")] += (int(fields[11]) + int(fields[12])) / ticks
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command, fields = text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid():
            seconds[f"child {command}"] += (int(fields[11]) + int(fields[12])) / ticks
    return dict(seconds)


def _timed(method, spent: list[float]):
    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - began
    return timed


def _quantiles(ages: list[float]) -> list[float] | None:
    return [round(float(value), 2) for value in np.quantile(ages, [0.5, 0.99, 1.0])] if ages else None


def _lists_written(active) -> int:
    counter = getattr(active.metrics, "lists_written", None)
    return int(counter._value.get()) if counter is not None else -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--replay-threads", type=int, default=None, help="the daemon's --replay-threads")
    parser.add_argument("--publish-threshold", type=float, default=None, help="the daemon's --publish-threshold")
    parser.add_argument("--engine-only", action="store_true", help="tree against alias table, engine alone")
    parser.add_argument("--rounds", type=int, default=3, help="--engine-only: turns of each sampler")
    arguments = parser.parse_args()
    if arguments.engine_only:
        result = engine_only(arguments.events, arguments.items, arguments.rounds)
        for key, value in result.items():
            if key != "profile":
                print(f"{key}: {value}")
        return 0
    state = Path(tempfile.mkdtemp(prefix="streamer-spare-"))
    try:
        extra = {name: value for name, value in (("replay_threads", arguments.replay_threads),
                                                 ("publish_threshold", arguments.publish_threshold)) if value is not None}
        result = run(arguments.events, arguments.items, arguments.seconds, arguments.profile, state, extra)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    for line in result.pop("profile") or []:
        print("profile", line)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
