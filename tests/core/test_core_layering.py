"""The pure core depends on nothing above it: no daemon shell, no evaluation package (HOUSE_STYLE: a pure
core under a thin daemon shell)."""

from __future__ import annotations

import ast
from pathlib import Path

import streamer.core

ALLOWED = ("streamer.core", "streamer.events", "streamer.errors")  # parsing and error types, no I/O


def _streamer_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "streamer" or name.startswith("streamer.")}


def test_core_modules_import_only_the_core_and_its_pure_helpers():
    folder = Path(streamer.core.__file__).parent
    offending = {path.name: sorted(name for name in _streamer_imports(path) if not name.startswith(ALLOWED))
                 for path in sorted(folder.glob("*.py"))}
    assert {name: imports for name, imports in offending.items() if imports} == {}


def test_the_live_quality_shadow_counts_with_the_core_cooccurrence():
    from streamer.core import cooccurrence, live_quality
    from streamer.evaluation import baselines

    assert live_quality.CooccurrenceModel is cooccurrence.CooccurrenceModel is baselines.CooccurrenceModel
