"""``streamer demo``: the whole pipeline on the embedded local stack, start to finish.

Starts a Tansu broker and a redis-server on free loopback ports, starts the real daemon
(``streamer run``) as a subprocess, announces the catalog, replays a shared data set through Kafka,
waits until the daemon has committed every offset, announces a brand-new item and shows its vector
land in Redis before its first interaction, prints similar items read back from Redis with
:class:`streamer.lookup.Lookup`, then stops the daemon (SIGTERM) and the stack. Nothing is left running:
SIGINT (Ctrl-C), SIGTERM or SIGHUP at any step stops the daemon, the broker and redis-server, says so in
one line and exits with 128 + the signal number. The temporary folder (checkpoint, logs) is removed, unless
the demo failed (then its path is printed) or ``--workdir`` named it.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from streamer.datasets import load_events, resolve_dataset
from streamer.errors import StreamerError
from streamer.interrupts import Stops

HELP = "run the whole pipeline on the embedded local stack (broker + Redis + daemon) and show results"
DESCRIPTION = __doc__

GROUP = "streamer-demo"
NAMESPACE = "demo"
# MovieLens ids of well-known films, shown when the demo runs on MovieLens.
SHOWCASE_MOVIES = ("1", "260", "2571", "858", "318")


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", default="movielens", help="movielens, yoochoose or diginetica")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N events in time order")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the events topic")
    parser.add_argument("--rate", type=float, default=0.0, help="replay rate in events/s (0 = as fast as possible)")
    parser.add_argument("--show", type=int, default=5, help="how many items to show similar items for")
    parser.add_argument("--k", type=int, default=10, help="neighbours shown per item")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up waiting for the daemon after N s")
    parser.add_argument("--workdir", default=None, help="keep checkpoint and daemon log here (default: temp dir)")


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _movie_catalog(folder: Path) -> dict[str, tuple[str, str]]:
    path = folder / "movies.csv"
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["movieId"]: (row["title"], row["genres"]) for row in csv.DictReader(handle)}


def _start_daemon(stack, workdir: Path, topic: str, catalog_topic: str) -> tuple[subprocess.Popen, Path]:
    log_path = workdir / "daemon.log"
    command = [
        sys.executable, "-m", "streamer", "run",
        "--bootstrap-servers", stack.bootstrap_servers, "--redis-url", stack.redis_url,
        "--topic", topic, "--catalog-topic", catalog_topic, "--group", GROUP, "--namespace", NAMESPACE,
        "--checkpoint-dir", str(workdir / "checkpoint"), "--checkpoint-interval", "2",
        "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "2000", "--status-interval", "3",
        "--neighbours-interval", "1", "--neighbours-batch", "5000",
    ]
    from streamer.localstack import spawn_child

    # its own session: a Ctrl-C in the terminal reaches only the demo, which stops the daemon once (SIGTERM)
    return spawn_child(command, log_path), log_path


def _wait_for_daemon(daemon: subprocess.Popen, log_path: Path, bootstrap: str, topic: str, produced: int,
                     timeout: float) -> float:
    from kafka import KafkaConsumer

    # reads the demo group's committed offsets; never subscribes, so it never joins the group
    offsets = KafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    try:
        return _wait_for_commits(daemon, log_path, offsets, topic, produced, timeout)
    finally:
        offsets.close()


def _compile_seconds(log_path: Path) -> float | None:
    """The daemon's ``engine_compiled seconds=...`` from its log, once it has compiled its kernels."""
    for line in log_path.read_text(errors="replace").splitlines():
        if " engine_compiled " in line:
            return float(line.split("seconds=", 1)[1].split()[0])
    return None


def _wait_for_commits(daemon: subprocess.Popen, log_path: Path, offsets, topic: str, produced: int,
                      timeout: float) -> float:
    from streamer.io.kafka_source import committed_total

    began = time.monotonic()
    last_print, compiled = 0.0, None
    while True:
        if daemon.poll() is not None:
            raise StreamerError(f"the daemon exited with code {daemon.returncode}; see its log {log_path}")
        committed = committed_total(offsets, topic)
        elapsed = time.monotonic() - began
        if committed >= produced:
            print(f"   daemon committed {committed:,}/{produced:,} offsets after {elapsed:.1f} s", flush=True)
            return elapsed
        if compiled is None:
            compiled = _compile_seconds(log_path)
            if compiled is not None:
                print(f"   daemon compiled its kernels in {compiled:.1f} s", flush=True)
        if elapsed - last_print >= 3:
            if compiled is None and not last_print:
                print("   daemon is compiling its numba kernels before it reads Kafka (about 15 s the first time, "
                      "under a second once cached) ...", flush=True)
            elif compiled is None:
                print(f"   still compiling ({elapsed:.0f} s) ...", flush=True)
            elif not committed and " partition_assigned " not in log_path.read_text(errors="replace"):
                print("   daemon is joining the consumer group (the broker waits a few seconds for members) ...",
                      flush=True)
            else:
                print(f"   daemon committed {committed:,}/{produced:,} offsets ...", flush=True)
            last_print = elapsed
        if elapsed > timeout:
            raise StreamerError(f"the daemon did not catch up within {timeout:.0f} s ({committed}/{produced})")
        time.sleep(0.5)


def _announce_catalog(stack, catalog_topic: str, movies: dict[str, tuple[str, str]]) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, linger_ms=5)
    for movie_id, (_, genres) in movies.items():
        update = {"op": "upsert", "item": movie_id, "attrs": {"genres": genres}}
        producer.send(catalog_topic, key=movie_id.encode(), value=orjson.dumps(update))
    producer.flush()
    producer.close()
    return len(movies)


def _new_item_lands(stack, lookup, catalog_topic: str, item: str, attrs: dict, timeout: float = 10.0) -> float | None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    sent = time.monotonic()
    producer.send(catalog_topic, key=item.encode(), value=orjson.dumps({"op": "upsert", "item": item, "attrs": attrs}))
    producer.flush()
    producer.close()
    while time.monotonic() - sent < timeout:
        if lookup.vector(item) is not None:
            return time.monotonic() - sent
        time.sleep(0.02)
    return None


def _label(item: str, movies: dict[str, tuple[str, str]]) -> str:
    return f"{item} {movies[item][0]}" if item in movies else item


def _wait_for_neighbours(lookup, items: list[str], movies: dict, timeout: float = 30.0) -> None:
    """Wait until every item has a published neighbour list, saying which ones it still waits for."""
    began, said = time.monotonic(), None
    while time.monotonic() - began < timeout:
        missing = [item for item in items if not lookup.similar(item, k=1)]
        if not missing:
            print(f"   every list is in Redis ({time.monotonic() - began:.1f} s)", flush=True)
            return
        if missing != said:
            print(f"   waiting for the neighbour list of {', '.join(_label(item, movies) for item in missing)} "
                  "(the daemon writes an item's list within about a second of its vector changing)", flush=True)
            said = missing
        time.sleep(0.1)
    print(f"   still no list after {timeout:.0f} s for {len(said or [])} item(s): see the daemon log", flush=True)


def _show_similar(lookup, items: list[str], movies: dict, k: int) -> None:
    _wait_for_neighbours(lookup, items, movies)
    for item in items:
        neighbours = lookup.similar(item, k=k)
        print(f"\n   similar to {_label(item, movies)}:")
        if not neighbours:
            print("     (no neighbour list published yet)")
        for neighbour, score in neighbours:
            print(f"     {score:6.3f}  {_label(neighbour, movies)}")


def _lookup_latency(lookup, items: list[str], rounds: int = 2000) -> tuple[float, float]:
    timings = []
    for index in range(rounds):
        began = time.perf_counter()
        lookup.vector(items[index % len(items)])
        timings.append(time.perf_counter() - began)
    timings.sort()
    return timings[len(timings) // 2] * 1000, timings[int(len(timings) * 0.99)] * 1000


def _popular_items(events, count: int) -> list[str]:
    totals: dict[str, int] = {}
    for _, item, _ in events:
        totals[item] = totals.get(item, 0) + 1
    return sorted(totals, key=totals.get, reverse=True)[:count]


def run(args) -> int:
    """The demo, with everything it starts registered in :class:`Stops` so that a stop signal stops it."""
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="streamer-demo-"))
    with Stops("streamer demo") as stops:
        if own_workdir:
            stops.add("workdir", lambda: shutil.rmtree(workdir, ignore_errors=True) or "removed its temporary folder")
        try:
            code = _run_demo(args, workdir, stops)
        except BaseException:
            stops.remove("workdir")
            print(f"streamer demo: kept the daemon log and checkpoint in {workdir}", file=sys.stderr, flush=True)
            raise
        with stops.cleaning_up():
            stops.remove("workdir")
            if code == 0 and own_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            elif code != 0:
                print(f"streamer demo: kept the daemon log and checkpoint in {workdir}", flush=True)
    return code


def _run_demo(args, workdir: Path, stops: Stops) -> int:
    from streamer.localstack import LocalStack, stop_process
    from streamer.lookup import Lookup
    from streamer.replay import ensure_topic, format_progress, produce_events

    kind, folder = resolve_dataset(args.dataset)
    events = load_events(kind, limit=args.limit)
    movies = _movie_catalog(folder) if kind == "movielens" else {}
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"streamer demo: {len(events):,} {kind} events through Kafka -> online Item2vec -> Redis")

    _step("1/6 starting the embedded local stack")
    stack = LocalStack(log_dir=workdir / "stack")
    stops.add("stack", lambda: stack.stop() or "stopped the broker and redis-server")
    try:
        stack.start()
        print(f"   {stack.describe()}")
        topic, catalog_topic = "events", "catalog"
        ensure_topic(stack.bootstrap_servers, topic, args.partitions)
        ensure_topic(stack.bootstrap_servers, catalog_topic, 1)
        with stops.cleaning_up():  # a signal while it starts is handled once the daemon can be stopped
            daemon, log_path = _start_daemon(stack, workdir, topic, catalog_topic)
            stops.add("daemon", lambda: f"stopped the daemon (exit code {stop_process(daemon, timeout=60)})")
        try:
            print(f"   daemon: pid {daemon.pid}, log {log_path}")
            if movies:
                _step("2/6 announcing the catalog (MovieLens titles and genres)")
                print(f"   {_announce_catalog(stack, catalog_topic, movies):,} catalog upserts sent")
            else:
                _step("2/6 no catalog file for this data set; items are created by their first event")

            _step(f"3/6 replaying {len(events):,} events into topic '{topic}' ({args.partitions} partitions)")
            stats = produce_events(stack.bootstrap_servers, topic, events, rate=args.rate,
                                   progress=lambda p: print(f"   {format_progress(p)}", flush=True))
            print(f"   {stats.messages:,} messages in {stats.seconds:.1f} s ({stats.messages_per_second:,.0f}/s)")

            _step("4/6 waiting until the daemon has learned and committed every event")
            _wait_for_daemon(daemon, log_path, stack.bootstrap_servers, topic, stats.messages, args.timeout)

            lookup = Lookup(stack.redis_url, namespace=NAMESPACE)
            meta = lookup.meta()
            print(f"   Redis holds {meta.item_count:,} item vectors of size {meta.vector_size}")

            _step("5/6 a brand-new item, announced by the catalog before anyone has seen it")
            landed = _new_item_lands(stack, lookup, catalog_topic, "new-animated-film",
                                     {"genres": "Adventure|Animation|Children|Comedy|Fantasy"})
            print("   its vector was in Redis after " + (f"{landed * 1000:.0f} ms" if landed else "(not within 10 s)"))

            _step("6/6 similar items, read back from Redis")
            print("   score = the model's similarity of the two items (Trainer.most_similar): the dot products of "
                  "their\n   vectors (in.out + out.in)/2 + 8 x their cosine + 1.25 x log(1 + the neighbour's recent "
                  "count).\n   Higher is closer; compare scores within one list, not across lists.")
            showcase = [m for m in SHOWCASE_MOVIES if m in movies] if movies else _popular_items(events, args.show)
            _show_similar(lookup, showcase[: args.show] + ["new-animated-film"], movies, args.k)
            p50, p99 = _lookup_latency(lookup, showcase or ["missing"])
            print(f"\n   Lookup.vector latency over loopback: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
            lookup.close()
        finally:
            with stops.cleaning_up():
                stops.remove("daemon")
                code = stop_process(daemon, timeout=60)
        print(f"\n== daemon stopped with exit code {code}; stopping the local stack")
    finally:
        with stops.cleaning_up():
            stops.remove("stack")
            stack.stop()
    print("done: the daemon, the broker and redis-server are stopped" + ("" if args.workdir else
          "; the temporary folder is removed (--workdir DIR keeps the checkpoint and logs)"))
    return 0 if code == 0 else 1
