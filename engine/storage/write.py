"""``InstanceWrite``: everything one engine call changes for one instance, and ``apply``, which
writes it in the caller's transaction. The instance row's ``rev`` makes the write optimistic: if
another transaction moved the instance on meanwhile, nothing is written and
``ConcurrencyConflict`` is raised for the caller to re-run its command on fresh state."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.errors import ConcurrencyConflict
from engine.storage import driver, store_external, user_tasks
from engine.storage import schema as t

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
    #: The instance row as read at ``expected_rev``: a column of ``KEPT_IF_EQUAL`` that
    #: ``instance`` leaves at its stored value is not in the UPDATE (``update_values``).
    stored_row: dict[str, Any] | None = None


#: Scalar columns an update often leaves as they were. SQLite rewrites the entries of every
#: index on a column the UPDATE sets, changed or not (the process key is in two).
KEPT_IF_EQUAL = frozenset(
    {"definition_id", "process_key", "version", "business_key", "state", "format", "ended_at"}
)


def update_values(w: InstanceWrite) -> dict[str, Any]:
    """The SET values (and ``b_id``, ``b_rev``) of ``w``'s instance update: the columns that
    hold the stored row's values left out. Safe because every writer of an instance row bumps
    its ``rev``: at ``expected_rev`` the row still holds ``stored_row``'s values."""
    inst, stored = w.instance, w.stored_row
    values: dict[str, Any] = {}
    for key, value in inst.items():
        if key == "id":
            continue
        if stored is not None and key in KEPT_IF_EQUAL:
            old = stored.get(key, _ABSENT)
            if old is value or (type(old) is type(value) and old == value):
                continue
        values[key] = value
    values["b_id"] = inst["id"]
    values["b_rev"] = w.expected_rev
    return values


_ABSENT = object()


# Statements of every write, built once: constructing a SQLAlchemy statement costs more than
# running it on SQLite. Bound parameters are prefixed ``b_`` to stay clear of column names.
# The ones every call runs go to the driver's cursor (``engine.storage.driver``).
_INSERT_INSTANCE = driver.DriverStatement(t.instances.insert())
_LOCK_INSTANCE_REV = driver.DriverStatement(
    sa.select(t.instances.c.rev).where(t.instances.c.id == sa.bindparam("b_id")).with_for_update()
)
_UPDATE_INSTANCE = driver.DriverStatement(
    t.instances.update().where(
        t.instances.c.id == sa.bindparam("b_id"), t.instances.c.rev == sa.bindparam("b_rev")
    )
)
_INSERT_HISTORY = driver.DriverStatement(t.history.insert())
_CLOSE_HISTORY = driver.DriverStatement(
    t.history.update().where(t.history.c.id == sa.bindparam("b_id"))
)
_DELETE_SUBSCRIPTIONS = driver.DriverStatement(
    t.subscriptions.delete().where(t.subscriptions.c.instance_id == sa.bindparam("b_id"))
)
_INSERT_SUBSCRIPTION = driver.DriverStatement(t.subscriptions.insert())
_COUNT_HELD_JOBS = driver.DriverStatement(
    sa.select(sa.func.count())
    .select_from(t.jobs)
    .where(
        t.jobs.c.id.in_(sa.bindparam("b_ids", expanding=True)),
        t.jobs.c.locked_by == sa.bindparam("b_owner"),
    )
)
_DELETE_JOBS = driver.DriverStatement(
    t.jobs.delete().where(t.jobs.c.id.in_(sa.bindparam("b_ids", expanding=True)))
)
_UPDATE_JOB = driver.DriverStatement(t.jobs.update().where(t.jobs.c.id == sa.bindparam("b_id")))
_DELETE_HELD_JOB = driver.DriverStatement(
    t.jobs.delete().where(
        t.jobs.c.id == sa.bindparam("b_id"), t.jobs.c.locked_by == sa.bindparam("b_owner")
    )
)
_INSERT_JOB = driver.DriverStatement(t.jobs.insert())


def apply(
    conn: Connection,
    w: InstanceWrite,
    dialect: str,
    check_external_held: CheckHeld,
    *,
    row_locked: bool = False,
) -> None:
    """Write ``w`` on ``conn`` (inside the caller's transaction); ``ConcurrencyConflict`` when
    the instance moved on or a held lock was lost. ``row_locked``: the transaction already holds
    the instance row (``Store.locked_instance``)."""
    inst = w.instance
    iid = inst["id"]
    # Whether the update below certainly matches (its row count need not be read).
    locked_at_rev = False
    if w.expected_rev is not None and dialect == "postgresql" and not row_locked:
        # The instance row first, as ``Store.locked_instance`` does: two writers of one instance
        # then queue on that row instead of deadlocking on its jobs or external tasks.
        rev = _LOCK_INSTANCE_REV.scalar(conn, {"b_id": iid})
        if rev != w.expected_rev:
            raise ConcurrencyConflict(f"instance {iid} was changed by another transaction")
        locked_at_rev = True
    jobs_delete = list(w.jobs_delete)
    if w.jobs_held:
        # A held job the write deletes is checked by that delete (one statement less
        # on the hot path of every job).
        done = [j for j in set(w.jobs_held) if j in jobs_delete]
        for jid in done:
            params = {"b_id": jid, "b_owner": w.lock_owner}
            if _DELETE_HELD_JOB.execute(conn, params) != 1:
                raise ConcurrencyConflict(f"job lock lost for instance {iid}")
            jobs_delete.remove(jid)
        rest = [j for j in set(w.jobs_held) if j not in done]
        if rest:
            held = _COUNT_HELD_JOBS.scalar(conn, {"b_ids": rest, "b_owner": w.lock_owner})
            if held != len(rest):
                raise ConcurrencyConflict(f"job lock lost for instance {iid}")
    if w.external_held:
        check_external_held(conn, w.external_held, iid)
    if w.jobs_cancel:
        _cancel_jobs(conn, w)
    # A new instance, or one whose row this transaction holds at the expected revision: no
    # row count to read, so on PostgreSQL the instance row, its history and subscriptions go
    # to the server in one round trip (engine.storage.driver.pipeline).
    batched = w.expected_rev is None or locked_at_rev
    with driver.pipeline(conn) if batched else contextlib.nullcontext():
        _write_instance(conn, w, check_rev=not locked_at_rev)
    if jobs_delete:
        _DELETE_JOBS.execute(conn, {"b_ids": jobs_delete})
    for row in w.jobs_update:
        _UPDATE_JOB.execute(
            conn, {"b_id": row["id"], **{k: v for k, v in row.items() if k != "id"}}
        )
    if w.jobs_insert:
        _INSERT_JOB.execute(conn, w.jobs_insert)
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
        driver.driver_execute(conn, f"NOTIFY {t.NOTIFY_CHANNEL}")


def _write_instance(conn: Connection, w: InstanceWrite, *, check_rev: bool) -> None:
    """The instance row (inserted, or updated at ``w.expected_rev``), its history rows and
    subscriptions: driver statements only."""
    inst = w.instance
    iid = inst["id"]
    if w.expected_rev is None:
        _INSERT_INSTANCE.execute(conn, inst)
    else:
        if _UPDATE_INSTANCE.execute(conn, update_values(w)) != 1 and check_rev:
            raise ConcurrencyConflict(f"instance {iid} was changed by another transaction")
    if w.history_insert:
        _INSERT_HISTORY.execute(conn, w.history_insert)
    if w.history_update:
        # One executemany per set of columns (a job's attempt also moves started_at).
        _CLOSE_HISTORY.execute(
            conn,
            [
                {"b_id": r["id"], **{k: v for k, v in r.items() if k != "id"}}
                for r in w.history_update
            ],
        )
    if w.subscriptions is not None:
        _DELETE_SUBSCRIPTIONS.execute(conn, {"b_id": iid})
        if w.subscriptions:
            _INSERT_SUBSCRIPTION.execute(conn, w.subscriptions)


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
