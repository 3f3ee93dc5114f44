"""The SQL an engine call runs, captured at the driver, and the query plan of each statement.

Used by ``tests/test_query_plans.py`` (SQLite: no hot statement scans a whole table) and by
``benchmarks/bench_scale.py`` (the plans on a large database, both backends, for
``docs/benchmarks.md``). Statements are captured below SQLAlchemy, on the DBAPI connection, so
statements a store runs on the driver's cursor directly are seen too: on SQLite by the
connection's trace callback (which hands over the SQL with its values expanded), on PostgreSQL
by a recording cursor class set on each psycopg connection.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

#: Statements with no plan worth reading.
_SKIP = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|NOTIFY|LISTEN|SELECT 1\b|SET\b|SHOW\b)",
    re.IGNORECASE,
)


@dataclass
class Statement:
    sql: str
    #: Bound parameters (PostgreSQL); None when ``sql`` carries its values (SQLite's trace).
    params: Any = None


@dataclass
class StatementLog:
    """What the engine ran while capturing, in order (duplicates by SQL text dropped)."""

    statements: list[Statement] = field(default_factory=list)
    #: Every statement's SQL in the order run, repeats and settings included.
    trace: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    active: bool = False

    def add(self, sql: str, params: Any = None) -> None:
        if not self.active:
            return
        with self._lock:
            self.trace.append(sql)
        if _SKIP.match(sql):
            return
        with self._lock:
            if sql not in self._seen:
                self._seen.add(sql)
                self.statements.append(Statement(sql, params))


@contextmanager
def capturing(engine: sa.Engine) -> Iterator[StatementLog]:
    """Record every statement run on ``engine``'s connections inside the block.

    The pool is emptied first so that every connection is opened with the recorder on it."""
    log = StatementLog()

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        if engine.dialect.name == "sqlite":
            dbapi_conn.set_trace_callback(log.add)
        elif engine.dialect.name == "postgresql":
            dbapi_conn.cursor_factory = _recording_cursor(log)

    event.listen(engine, "connect", on_connect)
    engine.dispose()
    log.active = True
    try:
        yield log
    finally:
        log.active = False
        event.remove(engine, "connect", on_connect)
        engine.dispose()


def _recording_cursor(log: StatementLog) -> type:
    import psycopg

    class RecordingCursor(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            log.add(str(query), params)
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params_seq = list(params_seq)
            log.add(str(query), params_seq[0] if params_seq else None)
            return super().executemany(query, params_seq, **kwargs)

    return RecordingCursor


def plan(engine: sa.Engine, statement: Statement) -> list[str]:
    """The plan of one captured statement, a line per step (SQLite's EXPLAIN QUERY PLAN
    details; PostgreSQL's EXPLAIN text). Nothing is executed."""
    with engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        cur = raw.cursor()
        try:
            if engine.dialect.name == "sqlite":
                cur.execute("EXPLAIN QUERY PLAN " + statement.sql)
                return [str(row[3]) for row in cur.fetchall()]
            cur.execute("EXPLAIN " + statement.sql, statement.params)
            return [str(row[0]) for row in cur.fetchall()]
        finally:
            cur.close()
            conn.rollback()


#: A step of a SQLite plan that reads a whole table: ``SCAN t`` without an index.
_SQLITE_FULL_SCAN = re.compile(r"^SCAN (\w+)(?: AS \w+)?$")
_PG_FULL_SCAN = re.compile(r"Seq Scan on (\w+)")


def full_scans(engine: sa.Engine, lines: list[str]) -> list[str]:
    """The tables a plan reads from end to end."""
    pattern = _SQLITE_FULL_SCAN if engine.dialect.name == "sqlite" else _PG_FULL_SCAN
    found = []
    for line in lines:
        match = pattern.search(line.strip())
        if match:
            found.append(match.group(1))
    return found


def sorts_everything(engine: sa.Engine, lines: list[str]) -> bool:
    """The plan sorts its rows itself (so a LIMIT cannot stop the read early)."""
    if engine.dialect.name == "sqlite":
        return any("USE TEMP B-TREE FOR ORDER BY" in line for line in lines)
    return any(line.strip().startswith("Sort") or "-> Sort" in line for line in lines)


# -- the hot calls -------------------------------------------------------------------------

TOPIC = "scale"


def scale_processes() -> dict[str, bytes]:
    """The processes the scale benchmark and the plan test run, by key: one call each of
    start, complete, job and fetch-and-lock, and the waiting states a large database holds."""
    from tests.bpmnbuild import process, service, user

    timer = (
        '<bpmn:intermediateCatchEvent id="Wait"><bpmn:timerEventDefinition>'
        '<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">P365D</bpmn:timeDuration>'
        "</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
    )
    return {
        # Started and completed in one call.
        "scale_sync": process("scale_sync", service("Work", "work")),
        # Ten history rows per instance: what the large database's ended instances hold.
        "scale_ended": process("scale_ended", *(service(f"Step{i}", "work") for i in range(8))),
        # Waits at a user task with candidates (the task list), then completes.
        "scale_wait": process(
            "scale_wait",
            service("Prepare", "work"),
            user("Approve").replace(
                "/>", 'camunda:candidateGroups="clerks" camunda:candidateUsers="ann,bob" />'
            ),
            service("After", "work"),
        ),
        # Commits a job first; a job run calls the handler.
        "scale_job": process(
            "scale_job", service("Work", "work", extra='camunda:asyncBefore="true"')
        ),
        # Waits for an external worker of topic ``scale``.
        "scale_external": process(
            "scale_external",
            service("Remote", extra=f'camunda:type="external" camunda:topic="{TOPIC}"'),
        ),
        # Waiting kinds of the large database: a timer due in a year, an external task of
        # another topic, a handler that fails into an incident.
        "scale_timer": process("scale_timer", timer, service("After", "work")),
        "scale_backlog": process(
            "scale_backlog",
            service("Remote", extra='camunda:type="external" camunda:topic="backlog"'),
        ),
        "scale_incident": process("scale_incident", service("Broken", "broken")),
    }


def deploy_scale_processes(eng: Any) -> None:
    def broken(_ctx: Any) -> None:
        raise ConnectionError("backend down")

    eng.register_handler("work", lambda ctx: {"done": True})
    eng.register_handler("broken", broken)
    for bpmn in scale_processes().values():
        eng.deploy(bpmn)


def hot_calls(eng: Any) -> None:
    """One of each per-call path: start, complete of a waiting task, a job run, a
    fetch-and-lock and its completion, a message correlation."""
    assert eng.start("scale_sync").state == "completed"
    waiting = eng.start("scale_wait")
    assert waiting.waiting_at == ["Approve"]
    eng.complete_task(waiting.id, "Approve", variables={"approved": True})
    job = eng.start("scale_job")
    assert eng.run_jobs(max_jobs=1) == 1
    assert eng.get_instance(job.id).state == "completed"
    remote = eng.start("scale_external")
    (task,) = eng.external_tasks.fetch_and_lock("w1", [TOPIC], max_tasks=1)
    assert task.instance_id == remote.id
    assert eng.external_tasks.complete(task.id, "w1", {"ok": True})


def listing_calls(eng: Any, limit: int = 50) -> None:
    """The operator's reads, each with a limit."""
    eng.instances(state="active", limit=limit)
    eng.instances(state="completed", limit=limit)
    eng.jobs(limit=limit)
    eng.incidents(limit=limit)
    eng.tasks(limit=limit)
    eng.tasks(candidate_group="clerks", limit=limit)
