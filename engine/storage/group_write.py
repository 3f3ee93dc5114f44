"""Group commit: the writes of several instances applied together, one statement per kind of row.

``Store.apply_group`` commits the writes of a batch of jobs (each of another instance) in one
transaction. ``apply_many`` is its fast path: instead of ``write.apply``'s four to six
statements per write, the writes' instance updates, held-job deletions, history rows and new
jobs go to the database as one statement (or one ``executemany``) each, with the same checks:
every instance still at its expected revision, every held job still locked by its owner. A
failed check raises ``ConcurrencyConflict`` without saying which write failed: the caller rolls
the transaction back and applies the group again write by write, each in a savepoint
(``Store.apply_group``), so one write's conflict never loses or repeats the others.

Only the parts of an ``InstanceWrite`` listed in ``BULK_PARTS`` are combined; a write with any
other part set (cancelled jobs, external-task checks, user tasks, a purge, a new instance...) is
applied on its own by ``write.apply`` in the same transaction, so a part added to
``InstanceWrite`` later is never skipped here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.errors import ConcurrencyConflict
from engine.storage import driver, group_write_pg
from engine.storage import schema as t
from engine.storage import write as write_mod
from engine.storage.write import CheckHeld, InstanceWrite

#: The parts of an ``InstanceWrite`` the combined statements apply.
BULK_PARTS = frozenset(
    {
        "instance",
        "expected_rev",
        "history_insert",
        "history_update",
        "subscriptions",
        "jobs_insert",
        "jobs_update",
        "jobs_delete",
        "jobs_held",
        "lock_owner",
        "incidents_insert",
        "external_insert",
        "outbox_insert",
        "variable_history_insert",
        "stored_row",
    }
)
_DEFAULTS = {
    f.name: (f.default_factory() if callable(f.default_factory) else f.default)
    for f in dataclasses.fields(InstanceWrite)
    if f.name not in ("instance", "expected_rev")
}

# Run on the driver's cursor (engine.storage.driver): a group's four to six statements are
# half of what its jobs cost outside SpiffWorkflow when they go through Connection.execute.
_i, _j = t.instances, t.jobs
_LOCK_REVS = driver.DriverStatement(
    sa.select(_i.c.id, _i.c.rev)
    .where(_i.c.id.in_(sa.bindparam("b_ids", expanding=True)))
    .order_by(_i.c.id)
    .with_for_update()
)
_UPDATE_INSTANCE = driver.DriverStatement(
    _i.update().where(_i.c.id == sa.bindparam("b_id"), _i.c.rev == sa.bindparam("b_rev"))
)
_DELETE_HELD_JOBS = driver.DriverStatement(
    _j.delete().where(
        _j.c.id.in_(sa.bindparam("b_ids", expanding=True)),
        _j.c.locked_by == sa.bindparam("b_owner"),
    )
)
_COUNT_HELD_JOBS = driver.DriverStatement(
    sa.select(sa.func.count())
    .select_from(_j)
    .where(
        _j.c.id.in_(sa.bindparam("b_ids", expanding=True)),
        _j.c.locked_by == sa.bindparam("b_owner"),
    )
)
_DELETE_JOBS = driver.DriverStatement(
    _j.delete().where(_j.c.id.in_(sa.bindparam("b_ids", expanding=True)))
)
_UPDATE_JOB = driver.DriverStatement(_j.update().where(_j.c.id == sa.bindparam("b_id")))
_CLOSE_HISTORY = driver.DriverStatement(
    t.history.update().where(t.history.c.id == sa.bindparam("b_id"))
)
_DELETE_SUBSCRIPTIONS = driver.DriverStatement(
    t.subscriptions.delete().where(
        t.subscriptions.c.instance_id.in_(sa.bindparam("b_ids", expanding=True))
    )
)


def combinable(w: InstanceWrite) -> bool:
    """Whether the combined statements apply all of ``w``: an update of an existing instance
    with no part outside ``BULK_PARTS``."""
    if w.expected_rev is None:
        return False
    for name, default in _DEFAULTS.items():
        if name not in BULK_PARTS and getattr(w, name) != default:
            return False
    return True


def apply_many(
    conn: Connection, writes: Sequence[InstanceWrite], dialect: str, check_held: CheckHeld
) -> None:
    """Apply ``writes`` (of distinct instances) on ``conn`` inside the caller's transaction;
    ``ConcurrencyConflict`` when any of them lost a race (the caller rolls back)."""
    combined: list[InstanceWrite] = []
    for w in writes:
        if combinable(w):
            combined.append(w)
        else:
            write_mod.apply(conn, w, dialect, check_held)
    if len(combined) == 1:
        write_mod.apply(conn, combined[0], dialect, check_held)
    elif combined:
        _apply_combined(conn, combined, dialect)


def _apply_combined(conn: Connection, writes: list[InstanceWrite], dialect: str) -> None:
    ids = [str(w.instance["id"]) for w in writes]
    if len(set(ids)) != len(ids):
        raise ValueError("a group holds two writes of one instance")
    if dialect == "postgresql" and group_write_pg.applies(writes):
        group_write_pg.apply_combined(conn, writes)  # the same statements in one round trip
        return
    if dialect == "postgresql":
        # The instance rows first, in id order, as write.apply locks one: writers of an
        # instance queue on its row instead of deadlocking on its jobs.
        revs = {r["id"]: r["rev"] for r in _LOCK_REVS.rows(conn, {"b_ids": sorted(ids)})}
        for w in writes:
            if revs.get(w.instance["id"]) != w.expected_rev:
                raise ConcurrencyConflict(
                    f"instance {w.instance['id']} was changed by another transaction"
                )
    jobs_delete: list[str] = []
    held_kept: dict[str | None, list[str]] = {}
    held_done: dict[str | None, list[str]] = {}
    for w in writes:
        deleted = set(w.jobs_delete)
        for jid in set(w.jobs_held):
            (held_done if jid in deleted else held_kept).setdefault(w.lock_owner, []).append(jid)
        jobs_delete.extend(j for j in w.jobs_delete if j not in w.jobs_held)
    for owner, jids in held_done.items():
        if _DELETE_HELD_JOBS.execute(conn, {"b_ids": jids, "b_owner": owner}) != len(jids):
            raise ConcurrencyConflict("job lock lost for an instance of the group")
    for owner, jids in held_kept.items():
        held = _COUNT_HELD_JOBS.scalar(conn, {"b_ids": jids, "b_owner": owner})
        if held != len(jids):
            raise ConcurrencyConflict("job lock lost for an instance of the group")
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for w in writes:
        values = write_mod.update_values(w)
        updates.setdefault(tuple(values), []).append(values)
    for rows in updates.values():
        if _UPDATE_INSTANCE.execute(conn, rows) != len(rows):
            raise ConcurrencyConflict("an instance of the group was changed by another transaction")
    _insert(conn, t.history, [r for w in writes for r in w.history_insert])
    closes: list[dict[str, Any]] = []
    for w in writes:
        for r in w.history_update:
            values = {k: v for k, v in r.items() if k != "id"}
            values["b_id"] = r["id"]
            closes.append(values)
    if closes:
        _CLOSE_HISTORY.execute(conn, closes)  # one executemany per set of columns
    replaced = [str(w.instance["id"]) for w in writes if w.subscriptions is not None]
    if replaced:
        _DELETE_SUBSCRIPTIONS.execute(conn, {"b_ids": replaced})
        _insert(conn, t.subscriptions, [s for w in writes for s in w.subscriptions or ()])
    if jobs_delete:
        _DELETE_JOBS.execute(conn, {"b_ids": jobs_delete})
    for w in writes:
        for row in w.jobs_update:
            _UPDATE_JOB.execute(
                conn, {"b_id": row["id"], **{k: v for k, v in row.items() if k != "id"}}
            )
    _insert(conn, t.jobs, [r for w in writes for r in w.jobs_insert])
    _insert(conn, t.incidents, [r for w in writes for r in w.incidents_insert])
    _insert(conn, t.external_tasks, [r for w in writes for r in w.external_insert])
    _insert(conn, t.outbox, [r for w in writes for r in w.outbox_insert])
    _insert(conn, t.variable_history, [r for w in writes for r in w.variable_history_insert])
    if dialect == "postgresql" and any(
        w.jobs_insert or w.jobs_update or w.external_insert or w.outbox_insert for w in writes
    ):
        # Delivered on commit: wakes executors, pools and bridges on other nodes.
        driver.driver_execute(conn, f"NOTIFY {t.NOTIFY_CHANNEL}")


_INSERTS = {
    table.name: driver.DriverStatement(table.insert())
    for table in (
        t.history,
        t.subscriptions,
        t.jobs,
        t.incidents,
        t.external_tasks,
        t.outbox,
        t.variable_history,
    )
}


def _insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``: one ``executemany`` per set of columns."""
    if rows:
        _INSERTS[table.name].execute(conn, rows)


__all__ = ["BULK_PARTS", "apply_many", "combinable"]
