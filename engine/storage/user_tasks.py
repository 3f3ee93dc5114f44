"""The user-task and operator parts of the storage interface (``Store`` inherits them).

User task rows (``sw_user_tasks``, candidates in ``sw_task_candidates`` so that "tasks mary may
claim" is an index lookup), the variable history, and what an ``InstanceWrite`` carries for
them: applied by ``apply_operations`` inside the write's transaction, after its instance row
passed its revision check.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.errors import ConcurrencyConflict
from engine.storage import schema as t

_u, _c = t.user_tasks, t.task_candidates
_DELETE_TASKS = _u.delete().where(_u.c.id.in_(sa.bindparam("b_ids", expanding=True)))
_DELETE_CANDIDATES = _c.delete().where(_c.c.task_id.in_(sa.bindparam("b_ids", expanding=True)))
_UPDATE_TASK = _u.update().where(_u.c.id == sa.bindparam("b_id"), _u.c.rev == sa.bindparam("b_rev"))


def candidate_rows(task: dict[str, Any]) -> list[dict[str, Any]]:
    common = {"task_id": task["id"], "instance_id": task["instance_id"]}
    common["created_at"] = task["created_at"]
    rows = [{**common, "kind": "user", "name": n} for n in task["candidate_users"]]
    rows += [{**common, "kind": "group", "name": n} for n in task["candidate_groups"]]
    return rows


def apply_operations(conn: Connection, w: Any) -> None:
    """The user-task, variable-history and purge parts of an ``InstanceWrite``."""
    iid = w.instance["id"]
    if w.purge:
        # Cancel: every piece of work of the instance goes, whatever the run tracked.
        conn.execute(t.jobs.delete().where(t.jobs.c.instance_id == iid))
        conn.execute(t.external_tasks.delete().where(t.external_tasks.c.instance_id == iid))
        conn.execute(t.subscriptions.delete().where(t.subscriptions.c.instance_id == iid))
        conn.execute(_u.delete().where(_u.c.instance_id == iid))
        conn.execute(_c.delete().where(_c.c.instance_id == iid))
        conn.execute(
            t.incidents.update()
            .where(t.incidents.c.instance_id == iid, t.incidents.c.resolved_at.is_(None))
            .values(resolved_at=w.instance["updated_at"])
        )
    if w.user_tasks_delete:
        conn.execute(_DELETE_CANDIDATES, {"b_ids": w.user_tasks_delete})
        conn.execute(_DELETE_TASKS, {"b_ids": w.user_tasks_delete})
    for row in w.user_tasks_update:
        values = {k: v for k, v in row.items() if k not in ("id", "expected_rev")}
        values.update(b_id=row["id"], b_rev=row["expected_rev"])
        if conn.execute(_UPDATE_TASK, values).rowcount != 1:
            raise ConcurrencyConflict(f"user task {row['id']} was changed by another transaction")
    if w.user_tasks_insert:
        conn.execute(_u.insert(), w.user_tasks_insert)
        candidates = [c for task in w.user_tasks_insert for c in candidate_rows(task)]
        if candidates:
            conn.execute(_c.insert(), candidates)
    if w.variable_history_insert:
        conn.execute(t.variable_history.insert(), w.variable_history_insert)


class UserTaskQueries:
    """Reads of user tasks and of the variable history."""

    if TYPE_CHECKING:
        dialect: str

        def transaction(self, write: bool = True) -> AbstractContextManager[Connection]: ...

    def user_tasks(
        self,
        *,
        instance_id: str | None = None,
        assignee: str | None = None,
        candidate_user: str | None = None,
        candidate_groups: Sequence[str] = (),
        process_key: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Open user tasks, oldest first. Candidate filters (a user, or groups the caller says
        the user is in) select the unassigned tasks they may claim, as Camunda's
        ``taskCandidateUser`` / ``taskCandidateGroupIn`` do."""
        filters: list[Any] = []
        if instance_id is not None:
            filters.append(_u.c.instance_id == instance_id)
        if assignee is not None:
            filters.append(_u.c.assignee == assignee)
        if process_key is not None:
            filters.append(_u.c.process_key == process_key)
        if candidate_user is not None or candidate_groups:
            match = [("user", candidate_user)] if candidate_user is not None else []
            match += [("group", g) for g in dict.fromkeys(candidate_groups)]
            # "Unassigned" (an assignee is never empty) is written per planner. SQLite's would
            # pick the assignee index for ``IS NULL`` and walk every unassigned task probing
            # the candidates, so there it is an expression no index holds. PostgreSQL's knows
            # from its column statistics how many tasks are unassigned only for ``IS NULL``;
            # for the expression it guesses 0.5% and scans every task instead of reading the
            # candidate's index in order (185 ms against 0.9 ms for 60,000 open tasks).
            if self.dialect == "postgresql":
                filters.append(_u.c.assignee.is_(None))
            else:
                filters.append(sa.func.coalesce(_u.c.assignee, "") == "")
            found: Any
            if limit is None:
                found = sa.select(_c.c.task_id).where(
                    sa.or_(*(sa.and_(_c.c.kind == k, _c.c.name == n) for k, n in match))
                )
            else:
                # With a limit: each candidate's first ``limit`` matching tasks, read in order
                # from ``ix_sw_task_candidates_listing`` (kind, name, created_at, task_id) and
                # stopped there; the oldest ``limit`` of their union are the answer. A
                # candidate with 60,000 open tasks costs ``limit`` rows, not 60,000.
                found = sa.union(
                    *(
                        sa.select(
                            sa.select(_c.c.task_id)
                            .join(_u, _u.c.id == _c.c.task_id)
                            .where(_c.c.kind == k, _c.c.name == n, *filters)
                            .order_by(_c.c.created_at, _c.c.task_id)
                            .limit(limit)
                            .subquery()
                            .c.task_id
                        )
                        for k, n in match
                    )
                )
            filters.append(_u.c.id.in_(found))
        query = sa.select(_u).where(*filters).order_by(_u.c.created_at, _u.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.transaction(write=False) as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def user_task(self, task_id: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = conn.execute(sa.select(_u).where(_u.c.id == task_id)).mappings().first()
            return dict(row) if row else None

    def variable_history(self, instance_id: str) -> list[dict[str, Any]]:
        v = t.variable_history
        query = (
            sa.select(v)
            .where(v.c.instance_id == instance_id)
            .order_by(v.c.created_at, v.c.pos, v.c.id)
        )
        with self.transaction(write=False) as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
