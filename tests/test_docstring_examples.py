"""The examples in streamer's docstrings run and print what they show (the docs snippets test covers docs/)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streamer

MODULES = sorted(info.name for info in pkgutil.walk_packages(streamer.__path__, "streamer.")
                 if not info.name.endswith("__main__"))  # importing it runs the command line


def test_modules_with_examples_are_found():
    assert "streamer.config" in MODULES and "streamer.core.neighbours" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
