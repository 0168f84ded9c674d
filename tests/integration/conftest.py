"""Integration tests leave no daemon behind, even when they fail half-way."""

from __future__ import annotations

import pytest

from tests.integration.daemon_support import stop_leftovers


@pytest.fixture(autouse=True)
def no_daemon_left_behind():
    """After each test, stop the daemon processes it spawned and did not stop itself."""
    yield
    stop_leftovers()
