"""``InstanceWrite``: everything one engine call changes for one instance, and ``apply``, which
writes it in the caller's transaction. The instance row's ``rev`` makes the write optimistic: if
another transaction moved the instance on meanwhile, nothing is written and
``ConcurrencyConflict`` is raised for the caller to re-run its command on fresh state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.errors import ConcurrencyConflict
from engine.storage import schema as t
from engine.storage import store_external, user_tasks

#: Checks that external tasks are still locked by the workers reporting on them.
CheckHeld = Callable[[Connection, Sequence[tuple[str, str]], str], None]


@dataclass
class InstanceWrite:
    """Everything one engine call changes for one instance, applied atomically."""

    instance: dict[str, Any]
    #: None inserts a new instance; otherwise the update only applies at this revision.
    expected_rev: int | None
    history_insert: list[dict[str, Any]] = field(default_factory=list)
    history_update: list[dict[str, Any]] = field(default_factory=list)
    #: Replaces the instance's subscriptions when not None.
    subscriptions: list[dict[str, Any]] | None = None
    jobs_insert: list[dict[str, Any]] = field(default_factory=list)
    jobs_update: list[dict[str, Any]] = field(default_factory=list)
    jobs_delete: list[str] = field(default_factory=list)
    #: Jobs whose task was cancelled or moved on: deleted, and their open incidents resolved.
    jobs_cancel: list[str] = field(default_factory=list)
    #: Job ids that must still be held by ``lock_owner`` for the write to apply.
    jobs_held: list[str] = field(default_factory=list)
    lock_owner: str | None = None
    incidents_insert: list[dict[str, Any]] = field(default_factory=list)
    incidents_resolve: list[str] = field(default_factory=list)
    external_insert: list[dict[str, Any]] = field(default_factory=list)
    external_update: list[dict[str, Any]] = field(default_factory=list)
    external_delete: list[str] = field(default_factory=list)
    #: (external task id, worker id) pairs: each task must still exist, locked by that worker.
    external_held: list[tuple[str, str]] = field(default_factory=list)
    outbox_insert: list[dict[str, Any]] = field(default_factory=list)
    # Operating running instances (engine.storage.user_tasks.apply_operations).
    user_tasks_insert: list[dict[str, Any]] = field(default_factory=list)
    #: {"id", "expected_rev", changed columns...}: applied only at that row revision.
    user_tasks_update: list[dict[str, Any]] = field(default_factory=list)
    user_tasks_delete: list[str] = field(default_factory=list)
    variable_history_insert: list[dict[str, Any]] = field(default_factory=list)
    #: Cancel: delete every job, external task, subscription and user task of the instance.
    purge: bool = False


# Statements of every write, built once: constructing a SQLAlchemy statement costs more than
# running it on SQLite. Bound parameters are prefixed ``b_`` to stay clear of column names.
_INSERT_INSTANCE = t.instances.insert()
_UPDATE_INSTANCE = t.instances.update().where(
    t.instances.c.id == sa.bindparam("b_id"), t.instances.c.rev == sa.bindparam("b_rev")
)
_INSERT_HISTORY = t.history.insert()
_CLOSE_HISTORY = t.history.update().where(t.history.c.id == sa.bindparam("b_id"))
_DELETE_SUBSCRIPTIONS = t.subscriptions.delete().where(
    t.subscriptions.c.instance_id == sa.bindparam("b_id")
)
_INSERT_SUBSCRIPTION = t.subscriptions.insert()
_COUNT_HELD_JOBS = (
    sa.select(sa.func.count())
    .select_from(t.jobs)
    .where(
        t.jobs.c.id.in_(sa.bindparam("b_ids", expanding=True)),
        t.jobs.c.locked_by == sa.bindparam("b_owner"),
    )
)
_DELETE_JOBS = t.jobs.delete().where(t.jobs.c.id.in_(sa.bindparam("b_ids", expanding=True)))
_UPDATE_JOB = t.jobs.update().where(t.jobs.c.id == sa.bindparam("b_id"))
_DELETE_HELD_JOB = t.jobs.delete().where(
    t.jobs.c.id == sa.bindparam("b_id"), t.jobs.c.locked_by == sa.bindparam("b_owner")
)
_INSERT_JOB = t.jobs.insert()


def apply(conn: Connection, w: InstanceWrite, dialect: str, check_external_held: CheckHeld) -> None:
    """Write ``w`` on ``conn`` (inside the caller's transaction); ``ConcurrencyConflict`` when
    the instance moved on or a held lock was lost."""
    inst = w.instance
    iid = inst["id"]
    jobs_delete = list(w.jobs_delete)
    if w.jobs_held:
        # A held job the write deletes is checked by that delete (one statement less
        # on the hot path of every job).
        done = [j for j in set(w.jobs_held) if j in jobs_delete]
        for jid in done:
            params = {"b_id": jid, "b_owner": w.lock_owner}
            if conn.execute(_DELETE_HELD_JOB, params).rowcount != 1:
                raise ConcurrencyConflict(f"job lock lost for instance {iid}")
            jobs_delete.remove(jid)
        rest = [j for j in set(w.jobs_held) if j not in done]
        if rest:
            held = conn.execute(
                _COUNT_HELD_JOBS, {"b_ids": rest, "b_owner": w.lock_owner}
            ).scalar_one()
            if held != len(rest):
                raise ConcurrencyConflict(f"job lock lost for instance {iid}")
    if w.external_held:
        check_external_held(conn, w.external_held, iid)
    if w.jobs_cancel:
        _cancel_jobs(conn, w)
    if w.expected_rev is None:
        conn.execute(_INSERT_INSTANCE, [inst])
    else:
        values = {k: v for k, v in inst.items() if k != "id"}
        values.update(b_id=iid, b_rev=w.expected_rev)
        if conn.execute(_UPDATE_INSTANCE, values).rowcount != 1:
            raise ConcurrencyConflict(f"instance {iid} was changed by another transaction")
    if w.history_insert:
        conn.execute(_INSERT_HISTORY, w.history_insert)
    # One executemany per set of columns (a job's attempt also moves started_at).
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in w.history_update:
        values = {k: v for k, v in r.items() if k != "id"}
        by_columns.setdefault(tuple(sorted(values)), []).append({"b_id": r["id"], **values})
    for rows in by_columns.values():
        conn.execute(_CLOSE_HISTORY, rows)
    if w.subscriptions is not None:
        conn.execute(_DELETE_SUBSCRIPTIONS, {"b_id": iid})
        if w.subscriptions:
            conn.execute(_INSERT_SUBSCRIPTION, w.subscriptions)
    if jobs_delete:
        conn.execute(_DELETE_JOBS, {"b_ids": jobs_delete})
    for row in w.jobs_update:
        conn.execute(
            _UPDATE_JOB, {"b_id": row["id"], **{k: v for k, v in row.items() if k != "id"}}
        )
    if w.jobs_insert:
        conn.execute(_INSERT_JOB, w.jobs_insert)
    if w.incidents_resolve:
        conn.execute(
            t.incidents.update()
            .where(t.incidents.c.id.in_(w.incidents_resolve))
            .values(resolved_at=inst["updated_at"])
        )
    if w.incidents_insert:
        conn.execute(t.incidents.insert(), w.incidents_insert)
    if w.external_delete:
        conn.execute(store_external.DELETE_BY_IDS, {"b_ids": w.external_delete})
    for row in w.external_update:
        conn.execute(
            t.external_tasks.update()
            .where(t.external_tasks.c.id == row["id"])
            .values(**{k: v for k, v in row.items() if k != "id"})
        )
    if w.external_insert:
        conn.execute(t.external_tasks.insert(), w.external_insert)
    if w.outbox_insert:
        conn.execute(t.outbox.insert(), w.outbox_insert)
    user_tasks.apply_operations(conn, w)
    if dialect == "postgresql" and (
        w.jobs_insert or w.jobs_update or w.external_insert or w.outbox_insert
    ):
        # Delivered on commit: wakes executors, pools and bridges on other nodes.
        conn.exec_driver_sql(f"NOTIFY {t.NOTIFY_CHANNEL}")


def _cancel_jobs(conn: Connection, w: InstanceWrite) -> None:
    inst = w.instance
    conn.execute(t.jobs.delete().where(t.jobs.c.id.in_(w.jobs_cancel)))
    resolved = conn.execute(
        t.incidents.update()
        .where(t.incidents.c.job_id.in_(w.jobs_cancel), t.incidents.c.resolved_at.is_(None))
        .values(resolved_at=inst["updated_at"])
    ).rowcount
    if resolved and inst.get("state") == "incident" and not w.incidents_insert:
        still_open = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.incidents)
            .where(t.incidents.c.instance_id == inst["id"], t.incidents.c.resolved_at.is_(None))
        ).scalar_one()
        if not still_open:
            # In place, so the caller's snapshot of the instance agrees.
            inst["state"] = "active"
