"""Shared fixtures: every engine test runs on SQLite and on the real PostgreSQL server.

PostgreSQL tests skip with a one-line reason when the server is unreachable, unless
SPILLWAY_REQUIRE_SERVICES=1 (as in CI), where they fail instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine import ProcessEngine
from engine.testing import ManualClock

PG_ADMIN_URL = os.environ.get(
    "SPILLWAY_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PG_TEST_DB = os.environ.get("SPILLWAY_PG_TEST_DB", "spillway_test")
REQUIRE = os.environ.get("SPILLWAY_REQUIRE_SERVICES") == "1"
PROCESSES = Path(__file__).parent / "bpmn"
EXAMPLES = Path(__file__).parent.parent / "processes"

_pg_state: dict[str, object] = {}


def pg_url() -> str:
    """URL of a migrated test database on the local server, or skip/fail with the reason."""
    if "url" in _pg_state:
        return str(_pg_state["url"])
    if "error" in _pg_state:
        _unavailable("PostgreSQL", str(_pg_state["error"]))
    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            # A fresh database per test session: a schema left by another checkout (another
            # branch's migrations) must not decide what this one sees.
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{PG_TEST_DB}"'))
        admin.dispose()
    except Exception as exc:
        _pg_state["error"] = f"{PG_ADMIN_URL}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        _unavailable("PostgreSQL", str(_pg_state["error"]))
    url = sa.make_url(PG_ADMIN_URL).set(database=PG_TEST_DB).render_as_string(hide_password=False)
    _pg_state["url"] = url
    return url


def _unavailable(service: str, reason: str) -> None:
    message = f"{service} unavailable: {reason}"
    if REQUIRE:
        pytest.fail(message + " (SPILLWAY_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def reset_pg(url: str) -> None:
    """Empty every engine table (the schema stays, migrated once)."""
    eng = ProcessEngine(url)
    tables = [
        "sw_deployments",
        "sw_resources",
        "sw_definitions",
        "sw_instances",
        "sw_history",
        "sw_subscriptions",
        "sw_jobs",
        "sw_incidents",
        "sw_external_tasks",
        "sw_outbox",
        "sw_user_tasks",
        "sw_task_candidates",
        "sw_variable_history",
    ]
    with eng.store.transaction() as conn:
        conn.exec_driver_sql("TRUNCATE " + ", ".join(tables))
    eng.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'spillway.db'}"
    url = pg_url()
    reset_pg(url)
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


EngineFactory = Callable[..., ProcessEngine]


@pytest.fixture
def make_engine(db_url: str, clock: ManualClock) -> Iterator[EngineFactory]:
    """Engines on the test database (several share it, as nodes would)."""
    engines: list[ProcessEngine] = []

    def make(**kwargs: object) -> ProcessEngine:
        kwargs.setdefault("clock", clock)
        eng = ProcessEngine(db_url, **kwargs)  # type: ignore[arg-type]
        engines.append(eng)
        return eng

    yield make
    for eng in engines:
        eng.close()


@pytest.fixture
def eng(make_engine: EngineFactory) -> ProcessEngine:
    return make_engine()


@pytest.fixture(autouse=True)
def _spillway_logs_reach_caplog() -> None:
    """Tests that read the engine's log lines must see them whatever an earlier test did to
    logging (Alembic's fileConfig and uvicorn's dictConfig can disable or detach loggers)."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("spillway") and isinstance(logger, logging.Logger):
            logger.disabled = False
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
