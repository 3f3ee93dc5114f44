"""Group commit on PostgreSQL: a group's statements sent in one psycopg pipeline.

``group_write`` applies a group of jobs' writes with one statement (or ``executemany``) per
kind of row, each answered before the next is sent: about seven round trips before the COMMIT
(the ``BEGIN``, the instance locks, the held jobs' deletion, the instance updates, the history
inserts and updates, each ``executemany`` synced on its own). Here the same statements, in the
same order, go to the server together (``engine.storage.driver.pipeline``) and are answered
together: one round trip, then the checks are made on their answers (every instance at its
expected revision, every held job still locked by its owner) and ``ConcurrencyConflict`` is
raised if one failed, before the caller commits; the caller then rolls the transaction back
and applies the group write by write, as on the other path. The locks are taken in the same
order: the instance rows first, in id order (``SELECT ... FOR UPDATE``), then the job rows.

A group whose writes insert incidents, external tasks, outbox or variable history rows (rare
in a job's write) takes ``group_write``'s statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from engine.core.errors import ConcurrencyConflict
from engine.storage import driver
from engine.storage import schema as t
from engine.storage import write as write_mod
from engine.storage.write import InstanceWrite

#: Parts ``group_write`` combines that this path leaves to it (rare in a job's write).
_OTHER_PARTS = ("incidents_insert", "external_insert", "outbox_insert", "variable_history_insert")

_i, _j = t.instances, t.jobs
_IDS = postgresql.ARRAY(sa.String())  # no length: a cast to varchar(n) would truncate
_LOCK_REVS = driver.DriverStatement(
    sa.select(_i.c.id, _i.c.rev)
    .where(_i.c.id == sa.any_(sa.bindparam("b_ids", type_=_IDS)))
    .order_by(_i.c.id)
    .with_for_update()
)
_COUNT_HELD_JOBS = driver.DriverStatement(
    sa.select(sa.func.count())
    .select_from(_j)
    .where(
        _j.c.id == sa.any_(sa.bindparam("b_ids", type_=_IDS)),
        _j.c.locked_by == sa.bindparam("b_owner"),
    )
)
_DELETE_JOB = driver.DriverStatement(_j.delete().where(_j.c.id == sa.bindparam("b_id")))


def applies(writes: Sequence[InstanceWrite]) -> bool:
    """Whether this path applies every part of the group's (combinable) writes."""
    return not any(getattr(w, part) for w in writes for part in _OTHER_PARTS)


def apply_combined(conn: Connection, writes: Sequence[InstanceWrite]) -> None:
    """Apply ``writes`` (of distinct instances, combinable, sorted by instance id) on ``conn``
    in the caller's transaction, in one round trip; ``ConcurrencyConflict`` when one of them
    lost a race (nothing is committed: the caller rolls back)."""
    held_done: dict[str | None, list[dict[str, Any]]] = {}
    held_kept: dict[str | None, list[str]] = {}
    jobs_delete: list[dict[str, Any]] = []
    for w in writes:
        deleted = set(w.jobs_delete)
        for jid in sorted(set(w.jobs_held)):
            if jid in deleted:
                held_done.setdefault(w.lock_owner, []).append(
                    {"b_id": jid, "b_owner": w.lock_owner}
                )
            else:
                held_kept.setdefault(w.lock_owner, []).append(jid)
        jobs_delete.extend({"b_id": j} for j in w.jobs_delete if j not in w.jobs_held)
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for w in writes:
        # As on every path: the columns still holding the stored row's values left out.
        values = write_mod.update_values(w)
        updates.setdefault(tuple(values), []).append(values)
    cursors: list[Any] = []
    with driver.pipeline(conn) as queued:
        assert queued is not None, "apply_combined runs on psycopg only"
        try:
            # The instance rows first, in id order, as write.apply locks one: writers of an
            # instance queue on its row instead of deadlocking on its jobs.
            revs = _LOCK_REVS.send(conn, {"b_ids": [str(w.instance["id"]) for w in writes]})
            cursors.append(revs)
            deletes = [write_mod._DELETE_HELD_JOB.send(conn, rows) for rows in held_done.values()]
            counts = [
                (_COUNT_HELD_JOBS.send(conn, {"b_ids": jids, "b_owner": owner}), len(jids))
                for owner, jids in held_kept.items()
            ]
            updated = [
                (write_mod._UPDATE_INSTANCE.send(conn, rows), len(rows))
                for rows in updates.values()
            ]
            cursors += deletes + [c for c, _ in counts] + [c for c, _ in updated]
            _write_rows(conn, writes, jobs_delete)
            queued.sync()
            found = dict(revs.fetchall())
            for w in writes:
                if found.get(w.instance["id"]) != w.expected_rev:
                    raise ConcurrencyConflict(
                        f"instance {w.instance['id']} was changed by another transaction"
                    )
            if any(
                c.rowcount != len(rows) for c, rows in zip(deletes, held_done.values(), strict=True)
            ):
                raise ConcurrencyConflict("job lock lost for an instance of the group")
            if any(c.fetchone()[0] != n for c, n in counts):
                raise ConcurrencyConflict("job lock lost for an instance of the group")
            if any(c.rowcount != n for c, n in updated):
                raise ConcurrencyConflict(
                    "an instance of the group was changed by another transaction"
                )
        finally:
            for cursor in cursors:
                cursor.close()


def _write_rows(
    conn: Connection, writes: Sequence[InstanceWrite], jobs_delete: list[dict[str, Any]]
) -> None:
    """The rows whose answers are not read: history, subscriptions, other jobs, NOTIFY."""
    history = [r for w in writes for r in w.history_insert]
    if history:
        write_mod._INSERT_HISTORY.execute(conn, history)
    closes = [
        {"b_id": r["id"], **{k: v for k, v in r.items() if k != "id"}}
        for w in writes
        for r in w.history_update
    ]
    if closes:
        write_mod._CLOSE_HISTORY.execute(conn, closes)  # one executemany per set of columns
    replaced = [w for w in writes if w.subscriptions is not None]
    if replaced:
        write_mod._DELETE_SUBSCRIPTIONS.execute(
            conn, [{"b_id": w.instance["id"]} for w in replaced]
        )
        subscriptions = [s for w in replaced for s in w.subscriptions or ()]
        if subscriptions:
            write_mod._INSERT_SUBSCRIPTION.execute(conn, subscriptions)
    if jobs_delete:
        _DELETE_JOB.execute(conn, jobs_delete)
    for w in writes:
        for row in w.jobs_update:
            write_mod._UPDATE_JOB.execute(
                conn, {"b_id": row["id"], **{k: v for k, v in row.items() if k != "id"}}
            )
    jobs = [r for w in writes for r in w.jobs_insert]
    if jobs:
        write_mod._INSERT_JOB.execute(conn, jobs)
    if any(w.jobs_insert or w.jobs_update for w in writes):
        # Delivered on commit: wakes executors, pools and bridges on other nodes.
        driver.driver_execute(conn, f"NOTIFY {t.NOTIFY_CHANNEL}")


__all__ = ["applies", "apply_combined"]
