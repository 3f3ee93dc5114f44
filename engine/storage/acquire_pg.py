"""Job acquisition on PostgreSQL in four round trips instead of six.

``JobQueries.acquire_jobs`` runs four statements in one transaction: the due jobs, the lock of
their instances (``FOR UPDATE SKIP LOCKED``, the rows read for the jobs), the re-check that no
sibling job got locked meanwhile, and the lock of the jobs (``UPDATE ... RETURNING``). Each is
answered before the next is sent, and psycopg sends the ``BEGIN`` and the ``COMMIT`` on their
own: six round trips. Here, in a psycopg pipeline (``engine.storage.driver.pipeline``), the
``BEGIN`` travels with the choice of jobs, and the instance locks with the re-check (both take
the chosen instances; the re-check runs after the locks on the server, as before): the same
statements in the same order, then the job locks and the caller's ``COMMIT``. Rows come
back through the columns' own result processors (aware UTC datetimes), as SQLAlchemy reads them.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import closing
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from engine.storage import driver
from engine.storage import schema as t

_j, _i = t.jobs, t.instances
_IDS = postgresql.ARRAY(sa.String())  # no length: a cast to varchar(n) would truncate


def _any(name: str) -> Any:
    return sa.any_(sa.bindparam(name, type_=_IDS))


class Statements:
    """The acquisition's statements on the driver, built once from ``JobQueries``' own
    conditions (``runnable``: the jobs it may take; ``free``: not locked, or the lock expired),
    with ``= ANY(array)`` where those take an expanding ``IN`` list."""

    def __init__(self, runnable: sa.Select[Any], free: sa.ColumnElement[bool]) -> None:
        due = runnable.where(_j.c.due_at <= sa.bindparam("b_now")).order_by(_j.c.due_at, _j.c.id)
        self.due = driver.DriverStatement(due.limit(sa.bindparam("b_limit")))
        here = sa.or_(_j.c.handler.is_(None), _j.c.handler == _any("b_handlers"))
        self.due_here = driver.DriverStatement(due.where(here).limit(sa.bindparam("b_limit")))
        self.job_if_free = driver.DriverStatement(runnable.where(_j.c.id == sa.bindparam("b_id")))
        self.lock_instances = driver.DriverStatement(
            sa.select(_i).where(_i.c.id == _any("b_ids")).with_for_update(skip_locked=True)
        )
        self.busy_instances = driver.DriverStatement(
            sa.select(_j.c.instance_id).where(
                _j.c.instance_id == _any("b_ids"),
                _j.c.locked_by.is_not(None),
                _j.c.lock_expires_at > sa.bindparam("b_now"),
            )
        )
        self.lock_jobs = driver.DriverStatement(
            _j.update()
            .where(_j.c.id == _any("b_ids"), free)
            .values(
                locked_by=sa.bindparam("b_owner"),
                lock_expires_at=sa.bindparam("b_until"),
                rev=_j.c.rev + 1,
            )
            .returning(*_j.c)
        )


# The acquisition's best plan depends on its parameters: how many jobs are due now, and how
# large the tables are then. psycopg prepares a statement run five times, and PostgreSQL then
# keeps one generic plan, costed from the statistics of that moment; on a young database that
# plan scanned every instance once per due job and kept doing so as the tables grew (a job
# cost 3x that on a database of a million instances). The acquisition is planned for its
# actual values instead, inside its own transaction only (``SET LOCAL``, sent in the pipeline
# with the BEGIN: no round trip of its own).
CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"


def acquire(
    conn: Connection,
    q: Statements,
    owner: str,
    now: datetime,
    lock_until: datetime,
    limit: int,
    job_id: str | None,
    handlers: Collection[str] | None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The jobs locked for ``owner`` and their instances' rows by id, as
    ``JobQueries.acquire_jobs`` chooses them, in ``conn``'s transaction (the caller commits)."""
    with driver.pipeline(conn) as queued:
        assert queued is not None, "acquire runs on psycopg only"
        driver.driver_execute(conn, CUSTOM_PLANS)
        if job_id is not None:
            due = q.job_if_free.send(conn, {"b_now": now, "b_id": job_id})
        elif handlers is not None:
            params = {"b_now": now, "b_limit": limit * 4, "b_handlers": sorted(handlers)}
            due = q.due_here.send(conn, params)
        else:
            due = q.due.send(conn, {"b_now": now, "b_limit": limit * 4})
        with closing(due):
            found = due.fetchall()  # sends the BEGIN and the choice together
        # In due order, one job per instance (None: a timer start event's job, no instance
        # to serialise on).
        candidates: list[tuple[str | None, str]] = []
        seen: set[str] = set()
        for jid, iid in found:
            if iid is None or iid not in seen:
                candidates.append((iid, jid))
                if iid is not None:
                    seen.add(iid)
        chosen: dict[str, str] = {}  # instance id -> job id
        definition_jobs: list[str] = []
        instances: dict[str, dict[str, Any]] = {}
        # The next candidates, as many as are still wanted, until enough are taken or none
        # is left: an acquirer running at the same moment chose the same first ones and
        # holds their instances (SKIP LOCKED), so this one goes on past them instead of
        # coming back empty.
        while candidates and len(chosen) + len(definition_jobs) < limit:
            want = limit - len(chosen) - len(definition_jobs)
            batch, candidates = candidates[:want], candidates[want:]
            definition_jobs += [jid for iid, jid in batch if iid is None]
            wanted = {iid: jid for iid, jid in batch if iid is not None}
            if not wanted:
                continue
            ids = list(wanted)
            locked = q.lock_instances.send(conn, {"b_ids": ids})
            busy = q.busy_instances.send(conn, {"b_ids": ids, "b_now": now})
            with closing(locked), closing(busy):
                rows = {row["id"]: row for row in _rows(conn, locked, _i)}
                still_busy = {r[0] for r in busy.fetchall()}
            # Under the instance locks: one suspended since the choice keeps its job, and
            # one whose sibling job got locked meanwhile is left.
            for iid, row in rows.items():
                if not row.get("suspended") and iid not in still_busy:
                    chosen[iid] = wanted[iid]
                    instances[iid] = row
        ids = [*chosen.values(), *definition_jobs]
        if not ids:
            return [], {}
        params = {"b_ids": ids, "b_now": now, "b_owner": owner, "b_until": lock_until}
        with closing(q.lock_jobs.send(conn, params)) as jobs_cursor:
            return _rows(conn, jobs_cursor, _j), instances


def _rows(conn: Connection, cursor: Any, table: sa.Table) -> list[dict[str, Any]]:
    """``cursor``'s rows as dicts, each value through its column's result processor."""
    rows = cursor.fetchall()  # first: in a pipeline, the description comes with the rows
    dialect = conn.dialect
    processors = []
    for column in cursor.description:
        process = table.c[column.name].type._cached_result_processor(dialect, None)
        processors.append((column.name, process))
    return [
        {
            name: (value if process is None else process(value))
            for (name, process), value in zip(processors, row, strict=True)
        }
        for row in rows
    ]


__all__ = ["Statements", "acquire"]
