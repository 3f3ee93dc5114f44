"""The external-task operations of the storage interface (``Store`` inherits them).

Kept apart from ``storage.store`` only for size: the same transactions, dialect rules and named
statements, built once. See ``Store.lock_external_tasks`` for the fetch order and locking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from engine.core.errors import ConcurrencyConflict
from engine.storage import reconnect
from engine.storage import schema as t

# External tasks by a list of ids (``expanding``: coercing 50 literal ids per call cost more
# than the query).
_IDS = t.external_tasks.c.id.in_(sa.bindparam("b_ids", expanding=True))
BY_IDS = sa.select(t.external_tasks).where(_IDS)
_OWNERS = sa.select(t.external_tasks.c.id, t.external_tasks.c.lock_owner).where(_IDS)
_OWNERS_LOCKED = _OWNERS.with_for_update()
DELETE_BY_IDS = t.external_tasks.delete().where(_IDS)
_LOCK = (
    t.external_tasks.update()
    .where(_IDS)
    .values(
        lock_owner=sa.bindparam("b_owner"),
        lock_expires_at=sa.bindparam("b_until"),
        rev=t.external_tasks.c.rev + 1,
    )
)


def _narrowing(spec: Mapping[str, Any], dialect: str) -> list[Any]:
    """SQL conditions of one topic's fetch filters."""
    x = t.external_tasks
    out: list[Any] = []
    if spec.get("business_key") is not None:
        out.append(x.c.business_key == spec["business_key"])
    if spec.get("process_keys") is not None:
        out.append(x.c.process_key.in_(list(spec["process_keys"])))
    if spec.get("definition_ids") is not None:
        of_definitions = sa.select(t.instances.c.id).where(
            t.instances.c.definition_id.in_(list(spec["definition_ids"]))
        )
        out.append(x.c.instance_id.in_(of_definitions))
    if spec.get("process_variables"):
        having = sa.or_(
            *(_variable_equals(name, value, dialect) for name, value in spec["process_variables"])
        )
        out.append(x.c.instance_id.in_(sa.select(t.instances.c.id).where(having)))
    return out


def _variable_equals(name: str, value: Any, dialect: str) -> Any:
    """``sw_instances.variables[name] == value`` for a scalar (or null) JSON value."""
    variables = t.instances.c.variables
    if dialect == "postgresql":
        element = sa.cast(variables, JSONB).op("->")(name)
        return element == sa.cast(sa.literal(json.dumps(value)), JSONB)
    path = f'$."{name}"'
    kind = sa.func.json_type(variables, path)
    if value is None:
        return kind == "null"
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    extracted = sa.func.json_extract(variables, path)
    if isinstance(value, str):
        return sa.and_(kind == "text", extracted == value)
    return sa.and_(kind.in_(["integer", "real"]), extracted == value)


class ExternalTaskQueries:
    """Fetch-and-lock, reads and lock changes of external task rows."""

    if TYPE_CHECKING:
        dialect: str

        def transaction(self, write: bool = True) -> AbstractContextManager[Connection]: ...

        @staticmethod
        def _refresh_incident_state(conn: Connection, instance_id: str, now: datetime) -> None: ...

    def _check_external_held(
        self, conn: Connection, held: Sequence[tuple[str, str]], instance_id: str
    ) -> None:
        """Every task must still exist, locked by the worker that reports on it. On PostgreSQL
        the rows stay locked until the commit, so no fetch can take one in between."""
        query = _OWNERS_LOCKED if self.dialect == "postgresql" else _OWNERS
        ids = sorted({tid for tid, _ in held})
        owners: dict[str, str | None] = {r[0]: r[1] for r in conn.execute(query, {"b_ids": ids})}
        for tid, worker in held:
            if tid not in owners or owners[tid] != worker:
                raise ConcurrencyConflict(
                    f"external task {tid} of instance {instance_id}: lock of {worker} lost"
                )

    def lock_external_tasks(
        self,
        worker_id: str,
        topics: Mapping[str, datetime],
        now: datetime,
        limit: int,
        *,
        filters: Mapping[str, Mapping[str, Any]] | None = None,
        by_priority: bool = False,
    ) -> list[dict[str, Any]]:
        """Lock up to ``limit`` fetchable tasks of ``topics`` (topic -> lock expiry) for
        ``worker_id``: open, due, and unlocked or with an expired lock, the longest due first.

        Ordered by ``due_at`` alone so the (topic, state, due_at) index gives the order and
        the scan stops after ``limit`` rows (a sort over the whole backlog cost 10 ms per fetch
        at 10,000 tasks). Ties come in index order, which is creation order on both backends
        in practice: the tasks of one instance (created together) come together, so a worker
        completing its batch moves each instance on in one write.

        PostgreSQL chooses ``FOR UPDATE SKIP LOCKED``, so concurrent fetchers on several nodes
        take disjoint tasks without waiting; on SQLite ``BEGIN IMMEDIATE`` serialises them.

        ``filters`` narrows a topic (topic -> ``business_key``, ``process_keys``,
        ``definition_ids``); ``by_priority`` takes higher ``priority`` first.
        """
        x = t.external_tasks
        names = list(topics)
        if filters:
            topic_clause: Any = sa.or_(
                *(
                    sa.and_(x.c.topic == n, *_narrowing(filters.get(n) or {}, self.dialect))
                    for n in names
                )
            )
        else:
            topic_clause = x.c.topic == names[0] if len(names) == 1 else x.c.topic.in_(names)
        ordering: tuple[Any, ...] = (
            (x.c.priority.desc(), x.c.due_at) if by_priority else (x.c.due_at,)
        )
        query = (
            sa.select(x.c.id, x.c.topic)
            .where(
                topic_clause,
                x.c.state == "open",
                x.c.due_at <= now,
                sa.or_(x.c.lock_owner.is_(None), x.c.lock_expires_at <= now),
                # Tasks of a suspended instance are not fetched (engine.runtime.operations).
                ~sa.select(t.instances.c.id)
                .where(t.instances.c.id == x.c.instance_id, t.instances.c.suspended.is_(True))
                .exists(),
            )
            .order_by(*ordering)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.transaction() as conn:
            chosen = conn.execute(query).all()
            if not chosen:
                return []
            by_topic: dict[str, list[str]] = {}
            for tid, topic in chosen:
                by_topic.setdefault(topic, []).append(tid)
            for topic, ids in by_topic.items():
                values = {"b_ids": ids, "b_owner": worker_id, "b_until": topics[topic]}
                conn.execute(_LOCK, values)
            order = {tid: i for i, (tid, _) in enumerate(chosen)}
            rows = conn.execute(BY_IDS, {"b_ids": list(order)}).mappings()
            return sorted((dict(r) for r in rows), key=lambda r: order[r["id"]])

    @reconnect.retry_read
    def external_task(self, task_id: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = (
                conn.execute(sa.select(t.external_tasks).where(t.external_tasks.c.id == task_id))
                .mappings()
                .first()
            )
            return dict(row) if row else None

    @reconnect.retry_read
    def external_tasks_by_id(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self.transaction(write=False) as conn:
            rows = conn.execute(BY_IDS, {"b_ids": list(task_ids)}).mappings()
            return {r["id"]: dict(r) for r in rows}

    @reconnect.retry_read
    def external_tasks(
        self, topic: str | None = None, instance_id: str | None = None
    ) -> list[dict[str, Any]]:
        x = t.external_tasks
        query = sa.select(x).order_by(x.c.created_at, x.c.instance_id, x.c.id)
        if topic is not None:
            query = query.where(x.c.topic == topic)
        if instance_id is not None:
            query = query.where(x.c.instance_id == instance_id)
        with self.transaction(write=False) as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    @reconnect.retry_read
    def count_fetchable_external(self, topics: Sequence[str], now: datetime) -> int:
        x = t.external_tasks
        with self.transaction(write=False) as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(x)
                    .where(
                        x.c.topic.in_(list(topics)),
                        x.c.state == "open",
                        x.c.due_at <= now,
                        sa.or_(x.c.lock_owner.is_(None), x.c.lock_expires_at <= now),
                    )
                ).scalar_one()
            )

    def extend_external_lock(self, task_id: str, worker_id: str, lock_until: datetime) -> bool:
        """False unless the task is open and locked by ``worker_id``."""
        x = t.external_tasks
        with self.transaction() as conn:
            result = conn.execute(
                x.update()
                .where(x.c.id == task_id, x.c.lock_owner == worker_id, x.c.state == "open")
                .values(lock_expires_at=lock_until, rev=x.c.rev + 1)
            )
            return bool(result.rowcount == 1)

    def lock_external_task(
        self, task_id: str, worker_id: str, lock_until: datetime, now: datetime
    ) -> bool:
        """Lock one open task for ``worker_id`` unless another worker holds an unexpired lock;
        False when it does (or the task is not open)."""
        x = t.external_tasks
        with self.transaction() as conn:
            result = conn.execute(
                x.update()
                .where(
                    x.c.id == task_id,
                    x.c.state == "open",
                    sa.or_(
                        x.c.lock_owner.is_(None),
                        x.c.lock_owner == worker_id,
                        x.c.lock_expires_at <= now,
                    ),
                )
                .values(lock_owner=worker_id, lock_expires_at=lock_until, rev=x.c.rev + 1)
            )
            return bool(result.rowcount == 1)

    def unlock_external_task(self, task_id: str) -> bool:
        x = t.external_tasks
        with self.transaction() as conn:
            result = conn.execute(
                x.update()
                .where(x.c.id == task_id)
                .values(lock_owner=None, lock_expires_at=None, rev=x.c.rev + 1)
            )
            if result.rowcount == 1 and self.dialect == "postgresql":
                conn.exec_driver_sql(f"NOTIFY {t.NOTIFY_CHANNEL}")
            return bool(result.rowcount == 1)

    def reschedule_external_task(
        self, task_id: str, worker_id: str, values: Mapping[str, Any]
    ) -> bool:
        """A failure with retries left: unlocked, one more attempt counted, due again at
        ``values["due_at"]``. False unless the task is open and locked by ``worker_id``."""
        x = t.external_tasks
        with self.transaction() as conn:
            result = conn.execute(
                x.update()
                .where(x.c.id == task_id, x.c.lock_owner == worker_id, x.c.state == "open")
                .values(
                    **values,
                    attempts=x.c.attempts + 1,
                    lock_owner=None,
                    lock_expires_at=None,
                    rev=x.c.rev + 1,
                )
            )
            return bool(result.rowcount == 1)

    def retry_external_task(self, task_id: str, retries: int, now: datetime) -> dict[str, Any]:
        """Operator retry: the task is open and fetchable now with ``retries``; its open
        incidents are resolved (and the instance leaves "incident" if none is left)."""
        x = t.external_tasks
        with self.transaction() as conn:
            row = conn.execute(sa.select(x).where(x.c.id == task_id)).mappings().first()
            if row is None:
                raise KeyError(task_id)
            values = {
                "state": "open",
                "retries": retries,
                "due_at": now,
                "lock_owner": None,
                "lock_expires_at": None,
            }
            conn.execute(x.update().where(x.c.id == task_id).values(**values, rev=x.c.rev + 1))
            conn.execute(
                t.incidents.update()
                .where(
                    t.incidents.c.job_id == task_id,
                    t.incidents.c.kind == "failed-external-task",
                    t.incidents.c.resolved_at.is_(None),
                )
                .values(resolved_at=now)
            )
            self._refresh_incident_state(conn, row["instance_id"], now)
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"NOTIFY {t.NOTIFY_CHANNEL}")
            return {**dict(row), **values}
