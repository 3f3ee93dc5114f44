"""The pytest plugin (registered through the ``pytest11`` entry point on install).

Fixtures: ``clock`` (a ManualClock), ``process_engine`` (a fresh engine on in-memory SQLite
driven by that clock, and the engine ``assert_that`` uses during the test) and ``spillway_env``
(both in one ``ProcessEnvironment`` with mocks and time travel). ``--spillway-coverage`` turns
on path coverage (``engine.testing.coverage_plugin``). ``--spillway-db URL``
or the ``SPILLWAY_TEST_DB`` environment variable point ``process_engine`` at a file or a
PostgreSQL database instead; that database is emptied before each test (so never point it at
one whose data matters).

The engine is the production one over a real SQL store: every call commits the instance and
the next call loads it back, so a variable or state that does not survive the database fails
the test, not production.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from engine.engine import ProcessEngine
from engine.storage import schema
from engine.testing.assertions import use_engine
from engine.testing.clock import ManualClock
from engine.testing.coverage_plugin import CoveragePlugin, add_options
from engine.testing.environment import ProcessEnvironment


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spillway")
    group.addoption(
        "--spillway-db",
        default=None,
        help="database URL for the process_engine fixture (default: in-memory SQLite)",
    )
    add_options(group)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--spillway-coverage"):
        coverage = CoveragePlugin(config)
        coverage.install()
        config.pluginmanager.register(coverage, "spillway-coverage")


@pytest.fixture
def clock() -> ManualClock:
    """Virtual time: ``clock.advance(3600)`` moves every timer, retry and lock expiry."""
    return ManualClock()


@pytest.fixture
def process_engine(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[ProcessEngine]:
    """A fresh engine on in-memory SQLite (or ``--spillway-db``) using the ``clock`` fixture;
    ``assert_that`` uses it for the duration of the test."""
    url = (
        request.config.getoption("--spillway-db")
        or os.environ.get("SPILLWAY_TEST_DB")
        or "sqlite://"
    )
    engine = ProcessEngine(url, clock=clock)
    try:
        if url != "sqlite://":
            _empty(engine)
        with use_engine(engine):
            yield engine
    finally:
        engine.close()


@pytest.fixture
def spillway_env(process_engine: ProcessEngine, clock: ManualClock) -> Iterator[ProcessEnvironment]:
    """The ``process_engine`` and its ``clock`` in one ``ProcessEnvironment``: ``advance``,
    ``mock_worker``, ``mock_handler``, ``complete_user_task``, ``correlate``; mocks are undone
    after the test."""
    env = ProcessEnvironment(process_engine, clock)
    try:
        yield env
    finally:
        env.close()


def _empty(engine: ProcessEngine) -> None:
    """Delete every row a previous test left in a shared test database (schema kept)."""
    with engine.store.transaction() as conn:
        for table in reversed(schema.metadata.sorted_tables):
            conn.execute(table.delete())
