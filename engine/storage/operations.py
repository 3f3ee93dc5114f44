"""Storage of the operator's verbs that touch rows directly (``Store`` inherits them):
suspension, deleting ended instances with their history (history cleanup), deleting
deployments.

Deletions go in batches, each its own short transaction, so a cleanup of a million instances
never holds SQLite's write lock (or PostgreSQL row locks) for long: the job executor's
transactions interleave between batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.storage import schema as t

ENDED_STATES = ("completed", "terminated")
#: Instances deleted per transaction by history cleanup: short transactions, so the write lock
#: (SQLite) is never held for long.
CLEANUP_BATCH = 100

_i = t.instances
_SET_SUSPENDED = (
    _i.update()
    .where(_i.c.id == sa.bindparam("b_id"), _i.c.rev == sa.bindparam("b_rev"))
    .values(
        suspended=sa.bindparam("b_flag"),
        rev=_i.c.rev + 1,
        updated_at=sa.bindparam("b_now"),
    )
)
_IDS: sa.BindParameter[Any] = sa.bindparam("b_ids", expanding=True)
#: What names an ended instance: its history.
_HISTORY = (t.history.c.instance_id, t.variable_history.c.instance_id, t.incidents.c.instance_id)
#: What only a running instance has (an instance's last write deletes these when it ends).
_WORK = (
    t.jobs.c.instance_id,
    t.external_tasks.c.instance_id,
    t.subscriptions.c.instance_id,
    t.task_candidates.c.instance_id,
    t.user_tasks.c.instance_id,
)
_DELETE_HISTORY = [col.table.delete().where(col.in_(_IDS)) for col in _HISTORY]
_DELETE_WORK = [col.table.delete().where(col.in_(_IDS)) for col in _WORK]
_DELETE_INSTANCES = _i.delete().where(_i.c.id.in_(_IDS))


def delete_instance_rows(conn: Connection, ids: Sequence[str], *, ended_only: bool) -> int:
    """Delete instances and the rows naming them (``ended_only``: instances that ended, which
    have history only); returns how many rows went."""
    if not ids:
        return 0
    params = {"b_ids": list(ids)}
    count = 0
    for statement in _DELETE_HISTORY if ended_only else [*_DELETE_WORK, *_DELETE_HISTORY]:
        count += int(conn.execute(statement, params).rowcount or 0)
    return count + int(conn.execute(_DELETE_INSTANCES, params).rowcount or 0)


class OperationQueries:
    if TYPE_CHECKING:
        dialect: str

        def transaction(self, write: bool = True) -> AbstractContextManager[Connection]: ...

    def set_suspended(self, instance_id: str, flag: bool, expected_rev: int, now: datetime) -> bool:
        """Suspend or activate at ``expected_rev``; False if the row moved on meanwhile."""
        with self.transaction() as conn:
            params = {"b_id": instance_id, "b_rev": expected_rev, "b_flag": flag, "b_now": now}
            done = conn.execute(_SET_SUSPENDED, params).rowcount == 1
            if done and not flag and self.dialect == "postgresql":
                conn.exec_driver_sql(f"NOTIFY {t.NOTIFY_CHANNEL}")  # its due work, on any node
            return bool(done)

    def definition_by_version(self, key: str, version: int) -> dict[str, Any] | None:
        d = t.definitions
        with self.transaction(write=False) as conn:
            row = (
                conn.execute(sa.select(d).where(d.c.key == key, d.c.version == version))
                .mappings()
                .first()
            )
            return dict(row) if row else None

    def all_definitions(self) -> list[dict[str, Any]]:
        with self.transaction(write=False) as conn:
            return [dict(r) for r in conn.execute(sa.select(t.definitions)).mappings()]

    def ended_instance_ids(
        self, definition_ids: Sequence[str], ended_before: datetime, limit: int
    ) -> list[str]:
        """Ids of instances of ``definition_ids`` that ended before ``ended_before``."""
        query = (
            sa.select(_i.c.id)
            .where(
                _i.c.ended_at < ended_before,
                _i.c.state.in_(ENDED_STATES),
                _i.c.definition_id.in_(list(definition_ids)),
            )
            .limit(limit)
        )
        with self.transaction(write=False) as conn:
            return [str(x) for x in conn.execute(query).scalars()]

    def delete_ended_instances(self, ids: Sequence[str]) -> tuple[int, int]:
        """Delete the ended ones of ``ids`` with their history: (instances, rows) deleted."""
        with self.transaction() as conn:
            ended = [
                str(x)
                for x in conn.execute(
                    sa.select(_i.c.id).where(_i.c.id.in_(list(ids)), _i.c.state.in_(ENDED_STATES))
                ).scalars()
            ]
            return len(ended), delete_instance_rows(conn, ended, ended_only=True)

    def deployment(self, deployment_id: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = (
                conn.execute(sa.select(t.deployments).where(t.deployments.c.id == deployment_id))
                .mappings()
                .first()
            )
            return dict(row) if row else None

    def delete_deployment(self, deployment_id: str, cascade: bool) -> tuple[int, list[str]]:
        """Delete a deployment, its resources and definitions (and their timer start jobs).
        Without ``cascade`` nothing is deleted while an instance of it runs: the ids of the
        running ones are returned instead. With it, every instance of it goes too (running or
        ended, with its history). Returns (instances deleted, running instance ids)."""
        d = t.definitions
        with self.transaction() as conn:
            def_ids = [
                str(x)
                for x in conn.execute(
                    sa.select(d.c.id).where(d.c.deployment_id == deployment_id)
                ).scalars()
            ]
            running = [
                str(x)
                for x in conn.execute(
                    sa.select(_i.c.id)
                    .where(_i.c.definition_id.in_(def_ids), _i.c.state.not_in(ENDED_STATES))
                    .order_by(_i.c.created_at, _i.c.id)
                ).scalars()
            ]
            if running and not cascade:
                return 0, running
            deleted = 0
            if cascade:
                ids = [
                    str(x)
                    for x in conn.execute(
                        sa.select(_i.c.id).where(_i.c.definition_id.in_(def_ids))
                    ).scalars()
                ]
                for start in range(0, len(ids), CLEANUP_BATCH):
                    delete_instance_rows(conn, ids[start : start + CLEANUP_BATCH], ended_only=False)
                deleted = len(ids)
            conn.execute(t.jobs.delete().where(t.jobs.c.definition_id.in_(def_ids)))
            conn.execute(d.delete().where(d.c.deployment_id == deployment_id))
            conn.execute(t.resources.delete().where(t.resources.c.deployment_id == deployment_id))
            conn.execute(t.deployments.delete().where(t.deployments.c.id == deployment_id))
            return deleted, running
