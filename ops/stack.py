"""Start and stop the embedded local stack (Tansu broker + redis-server) from the shell.

    python3 ops/stack.py up              # foreground: prints addresses; Ctrl-C, SIGTERM or SIGHUP stops both
    python3 ops/stack.py start           # background: writes the PIDs and addresses to a state file
    eval "$(python3 ops/stack.py env)"   # export STREAMER_BOOTSTRAP_SERVERS / STREAMER_REDIS_URL
    python3 ops/stack.py stop            # stops exactly the PIDs in the state file

The state file is ``$STREAMER_STACK_STATE`` or ``.streamer-stack.json`` in the working directory; the
servers started by ``start`` log next to it (``.streamer-stack-logs/``, removed by ``stop``). From a fresh
clone (the package not installed) the script re-runs itself with ``./.venv`` (``bash ops/dev.sh python``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = Path(os.environ.get("STREAMER_STACK_STATE", ".streamer-stack.json"))
LOG_DIR = STATE_FILE.with_name(STATE_FILE.stem + "-logs")  # the servers' logs of `start`, removed by `stop`


def _import_local_stack():
    """``streamer.localstack.LocalStack`` from this checkout; from a fresh clone, re-run through ./.venv.

    ``bash ops/dev.sh python`` creates ``./.venv`` with the package on first use, so
    ``python3 ops/stack.py up`` works before anything is installed.
    """
    sys.path.insert(0, str(ROOT))
    try:
        from streamer.localstack import LocalStack, StackError, find_redis_server, find_tansu
    except ImportError as error:  # the package's dependencies are not in this interpreter
        _run_in_venv(str(error))
    try:
        find_tansu(), find_redis_server()
    except StackError as error:  # the `local` extra is not in this interpreter
        _run_in_venv(str(error))
    return LocalStack


def _run_in_venv(reason: str) -> None:
    if os.environ.get("STREAMER_STACK_REEXEC"):
        sys.exit(f"stack.py: {reason}; run: bash ops/dev.sh python ops/stack.py ...")
    print(f"stack.py: {reason}; running it with ./.venv (bash ops/dev.sh python)", file=sys.stderr)
    os.environ["STREAMER_STACK_REEXEC"] = "1"
    os.environ.setdefault("STREAMER_STACK_STATE", str(STATE_FILE.resolve()))
    command = ["bash", str(ROOT / "ops" / "dev.sh"), "python", str(Path(__file__).resolve()), *sys.argv[1:]]
    os.execvp("bash", command)


def _is_ours(pid: int, binary: str) -> bool:
    """True when ``pid`` still runs ``binary`` (guards against a recycled PID)."""
    try:
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode().split(" ")[0]
    except OSError:
        return False
    return os.path.basename(program) == os.path.basename(binary)  # redis-server rewrites its argv: keep word 1


def command_up(_: argparse.Namespace) -> int:
    """Foreground until Ctrl-C, SIGTERM or SIGHUP (exit 0: the way to stop it) or until a server exits."""
    local_stack = _import_local_stack()
    from streamer.interrupts import Stops

    with Stops("stack.py", exit_code=0) as stops:
        stack = local_stack()
        stops.add("stack", lambda: stack.stop() or "stopped the broker and redis-server")
        stack.start()
        print(stack.describe(), flush=True)
        print(f"export STREAMER_BOOTSTRAP_SERVERS={stack.bootstrap_servers}")
        print(f"export STREAMER_REDIS_URL={stack.redis_url}")
        print("Ctrl-C stops both.", flush=True)
        while stack.broker.process.poll() is None and stack.redis.process.poll() is None:
            time.sleep(0.5)
        with stops.cleaning_up():
            stops.remove("stack")
            stack.stop()
    print("stack.py: a server exited: stopped the broker and redis-server", file=sys.stderr)
    return 1


def command_start(_: argparse.Namespace) -> int:
    if STATE_FILE.exists():
        print(f"a stack is already recorded in {STATE_FILE}; run 'stop' first", file=sys.stderr)
        return 1
    stack = _import_local_stack()(log_dir=LOG_DIR, tied=False)  # outlives this command, until `stop`
    stack.start_broker()
    stack.start_redis()
    state = {
        "bootstrap_servers": stack.bootstrap_servers,
        "redis_url": stack.redis_url,
        "processes": [{"name": m.name, "pid": m.pid, "binary": m.process.args[0]} for m in (stack.broker, stack.redis)],
    }
    STATE_FILE.write_text(json.dumps(state, indent=2))
    print(stack.describe())
    print(f"state in {STATE_FILE}; stop with: python3 ops/stack.py stop")
    return 0


def command_env(_: argparse.Namespace) -> int:
    state = json.loads(STATE_FILE.read_text())
    print(f"export STREAMER_BOOTSTRAP_SERVERS={state['bootstrap_servers']}")
    print(f"export STREAMER_REDIS_URL={state['redis_url']}")
    return 0


def command_stop(_: argparse.Namespace) -> int:
    if not STATE_FILE.exists():
        print(f"no stack recorded in {STATE_FILE}")
        return 0
    state = json.loads(STATE_FILE.read_text())
    for entry in state["processes"]:
        if _is_ours(entry["pid"], entry["binary"]):
            os.kill(entry["pid"], signal.SIGTERM)
            print(f"stopped {entry['name']} (pid {entry['pid']})")
        else:
            print(f"{entry['name']} (pid {entry['pid']}) was not running")
    STATE_FILE.unlink()
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = {"up": command_up, "start": command_start, "env": command_env, "stop": command_stop}
    parser.add_argument("action", choices=commands)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from streamer.errors import StreamerError

    try:
        return commands[args.action](args)
    except StreamerError as error:
        print(f"stack.py: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
