"""The pytest plugin (registered through the ``pytest11`` entry point on install).

Fixtures: ``clock`` (a ManualClock) and ``process_engine`` (a fresh engine on in-memory SQLite
driven by that clock). ``--spillway-db URL`` or the ``SPILLWAY_TEST_DB`` environment variable
point ``process_engine`` at a file or a PostgreSQL database instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from engine.engine import ProcessEngine
from engine.testing.clock import ManualClock


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spillway")
    group.addoption(
        "--spillway-db",
        default=None,
        help="database URL for the process_engine fixture (default: in-memory SQLite)",
    )


@pytest.fixture
def clock() -> ManualClock:
    """Virtual time: ``clock.advance(3600)`` moves every timer, retry and lock expiry."""
    return ManualClock()


@pytest.fixture
def process_engine(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[ProcessEngine]:
    """A fresh engine on in-memory SQLite (or ``--spillway-db``) using the ``clock`` fixture."""
    url = (
        request.config.getoption("--spillway-db")
        or os.environ.get("SPILLWAY_TEST_DB")
        or "sqlite://"
    )
    engine = ProcessEngine(url, clock=clock)
    try:
        yield engine
    finally:
        engine.close()
