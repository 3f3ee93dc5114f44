"""The job and incident operations of the storage interface (``Store`` inherits them):
acquisition, locks, failures, operator retries, and reads.

Kept apart from ``storage.store`` for size, as ``store_external`` is: the same transactions,
dialect rules and named statements, built once.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.storage import acquire_pg, driver, reconnect
from engine.storage import schema as t

#: Key of an acquired job row holding its instance row read in the same transaction.
PRELOADED = "_instance"
NOTIFY_CHANNEL = t.NOTIFY_CHANNEL

# ``retries_left > 0`` as literal SQL, not a bound parameter: it is the condition of the partial
# index ``ix_sw_jobs_runnable``, which a planner only uses when the query states it as such. Jobs
# out of retries (their incidents open) stay out of that index, so acquisition never walks them.
RUNNABLE_JOB = t.jobs.c.retries_left > sa.literal_column("0")

# When the next job can run: its due time, or the end of the lock a (crashed) owner holds.
# Two index reads, not one pass over every runnable job: the first free job in due order
# (``ix_sw_jobs_runnable``; jobs locked past their due time are skipped, as few as the running
# ones), and the soonest lock end of the locked jobs (``ix_sw_jobs_locked``, partial: only the
# locked ones). The earlier of the two is the answer (migration 0009).
_NOT_SUSPENDED = ~(
    sa.select(t.instances.c.id)
    .where(t.instances.c.id == t.jobs.c.instance_id, t.instances.c.suspended.is_(True))
    .exists()
)
_LOCKED_PAST_DUE = sa.and_(
    t.jobs.c.locked_by.is_not(None), t.jobs.c.lock_expires_at > t.jobs.c.due_at
)
_NEXT_FREE_DUE = (
    sa.select(t.jobs.c.due_at)
    .where(
        RUNNABLE_JOB,
        sa.or_(
            t.jobs.c.locked_by.is_(None),
            t.jobs.c.lock_expires_at.is_(None),
            t.jobs.c.lock_expires_at <= t.jobs.c.due_at,
        ),
        _NOT_SUSPENDED,
    )
    .order_by(t.jobs.c.due_at, t.jobs.c.id)
    .limit(1)
)
_NEXT_LOCK_END = (
    sa.select(t.jobs.c.lock_expires_at)
    .where(RUNNABLE_JOB, _LOCKED_PAST_DUE, _NOT_SUSPENDED)
    .order_by(t.jobs.c.lock_expires_at)
    .limit(1)
)

_j, _sibling = t.jobs, sa.alias(t.jobs, "sibling")
_FREE = sa.or_(_j.c.locked_by.is_(None), _j.c.lock_expires_at <= sa.bindparam("b_now"))
_INSTANCE_BUSY = (
    sa.select(_sibling.c.id)
    .where(
        _sibling.c.instance_id == _j.c.instance_id,
        _sibling.c.id != _j.c.id,
        _sibling.c.locked_by.is_not(None),
        _sibling.c.lock_expires_at > sa.bindparam("b_now"),
    )
    .exists()
)
# A suspended instance's jobs and timers wait (engine.runtime.operations): checked here, in the
# acquisition itself, so every node obeys.
_SUSPENDED = (
    sa.select(t.instances.c.id)
    .where(t.instances.c.id == _j.c.instance_id, t.instances.c.suspended.is_(True))
    .exists()
)
_RUNNABLE = sa.select(_j.c.id, _j.c.instance_id).where(
    RUNNABLE_JOB, _FREE, ~_INSTANCE_BUSY, ~_SUSPENDED
)
_DUE_JOBS = (
    _RUNNABLE.where(_j.c.due_at <= sa.bindparam("b_now"))
    .order_by(_j.c.due_at, _j.c.id)
    .limit(sa.bindparam("b_limit"))
)
_JOB_IF_FREE = _RUNNABLE.where(_j.c.id == sa.bindparam("b_id"))
# A job needs no handler, or one the acquirer has registered.
_RUNNABLE_HERE = sa.or_(
    _j.c.handler.is_(None), _j.c.handler.in_(sa.bindparam("b_handlers", expanding=True))
)
_DUE_JOBS_HERE = _DUE_JOBS.where(_RUNNABLE_HERE)
_INSTANCES_BY_IDS = sa.select(t.instances).where(
    t.instances.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
_LOCK_JOBS = (
    _j.update()
    .where(_j.c.id.in_(sa.bindparam("b_ids", expanding=True)), _FREE)
    .values(
        locked_by=sa.bindparam("b_owner"), lock_expires_at=sa.bindparam("b_until"), rev=_j.c.rev + 1
    )
    .returning(*_j.c)
)
#: The same acquisition on PostgreSQL, on the driver in a pipeline (``storage.acquire_pg``).
_PG_ACQUIRE = acquire_pg.Statements(_RUNNABLE, _FREE)


def _preloaded(
    jobs: list[dict[str, Any]], instances: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    for job in jobs:
        # The instance as of the acquisition, so running the job needs no read of its own; a
        # write against a stale copy fails its rev check like any other race.
        job[PRELOADED] = instances.get(job["instance_id"])
    return sorted(jobs, key=lambda j: (j["due_at"], j["id"]))


# The acquisition's statements run on the driver's cursor (engine.storage.driver): one
# acquisition per group of jobs, three statements each.
_DRIVER_DUE_JOBS = driver.DriverStatement(_DUE_JOBS)
_DRIVER_DUE_JOBS_HERE = driver.DriverStatement(_DUE_JOBS_HERE)
_DRIVER_DUE_JOBS_NO_HANDLER = driver.DriverStatement(_DUE_JOBS.where(_j.c.handler.is_(None)))
_DRIVER_JOB_IF_FREE = driver.DriverStatement(_JOB_IF_FREE)
_DRIVER_INSTANCES_BY_IDS = driver.DriverStatement(_INSTANCES_BY_IDS)
_DRIVER_LOCK_JOBS = driver.DriverStatement(_LOCK_JOBS, fixed_shape=True)


class JobQueries:
    """Acquiring, locking, failing and retrying jobs; incidents; their reads."""

    if TYPE_CHECKING:
        dialect: str
        engine: Engine

        def transaction(self, write: bool = True) -> AbstractContextManager[Connection]: ...

    def acquire_jobs(
        self,
        owner: str,
        now: datetime,
        lock_until: datetime,
        limit: int,
        job_id: str | None = None,
        handlers: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Lock up to ``limit`` due jobs for ``owner``, at most one per instance, skipping
        instances that already have a locked job (exclusive jobs, as in Camunda).

        On PostgreSQL the instance rows are locked ``FOR UPDATE SKIP LOCKED`` while choosing,
        so two acquirers never take jobs of one instance (``engine.storage.acquire_pg``); on
        SQLite ``BEGIN IMMEDIATE`` serialises acquirers.
        """
        if self.dialect == "postgresql":
            with self.transaction() as conn:
                locked, rows_of = acquire_pg.acquire(
                    conn, _PG_ACQUIRE, owner, now, lock_until, limit, job_id, handlers
                )
            return _preloaded(locked, rows_of)
        with self.transaction() as conn:
            due: driver.DriverStatement
            if job_id is not None:
                due, params = _DRIVER_JOB_IF_FREE, {"b_now": now, "b_id": job_id}
            elif handlers:
                due = _DRIVER_DUE_JOBS_HERE
                params = {"b_now": now, "b_limit": limit * 4, "b_handlers": sorted(handlers)}
            elif handlers is not None:
                # No handler registered: only jobs that need none (an empty IN list is not
                # a driver statement).
                due = _DRIVER_DUE_JOBS_NO_HANDLER
                params = {"b_now": now, "b_limit": limit * 4}
            else:
                due, params = _DRIVER_DUE_JOBS, {"b_now": now, "b_limit": limit * 4}
            chosen: dict[str, str] = {}  # instance id -> job id
            definition_jobs: list[str] = []  # timer start events: no instance to serialise on
            for found in due.rows(conn, params):
                jid, iid = found["id"], found["instance_id"]
                if iid is None:
                    definition_jobs.append(jid)
                elif iid not in chosen:
                    chosen[iid] = jid
                if len(chosen) + len(definition_jobs) >= limit:
                    break
            if not chosen and not definition_jobs:
                return []
            instances: dict[str, dict[str, Any]] = {}
            if chosen:
                for r in _DRIVER_INSTANCES_BY_IDS.rows(conn, {"b_ids": list(chosen)}):
                    instances[r["id"]] = r
                # Under the instance locks: one suspended since the choice keeps its job.
                paused = {i for i, r in instances.items() if r.get("suspended")}
                if paused:
                    chosen = {i: j for i, j in chosen.items() if i not in paused}
                    instances = {i: r for i, r in instances.items() if i not in paused}
            ids = [*chosen.values(), *definition_jobs]
            if not ids:
                return []
            jobs = _DRIVER_LOCK_JOBS.rows(
                conn, {"b_ids": ids, "b_now": now, "b_owner": owner, "b_until": lock_until}
            )
        return _preloaded(jobs, instances)

    def release_job(self, job_id: str, owner: str) -> None:
        """Give a job back without counting an attempt (the instance was busy elsewhere)."""
        with self.transaction() as conn:
            conn.execute(
                t.jobs.update()
                .where(t.jobs.c.id == job_id, t.jobs.c.locked_by == owner)
                .values(locked_by=None, lock_expires_at=None, rev=t.jobs.c.rev + 1)
            )

    def extend_job_lock(self, job_id: str, owner: str, lock_until: datetime) -> bool:
        with self.transaction() as conn:
            result = conn.execute(
                t.jobs.update()
                .where(t.jobs.c.id == job_id, t.jobs.c.locked_by == owner)
                .values(lock_expires_at=lock_until)
            )
            return bool(result.rowcount == 1)

    def delete_job(self, job_id: str, owner: str | None = None) -> bool:
        with self.transaction() as conn:
            query = t.jobs.delete().where(t.jobs.c.id == job_id)
            if owner is not None:
                query = query.where(t.jobs.c.locked_by == owner)
            return bool(conn.execute(query).rowcount == 1)

    def record_job_failure(
        self,
        job_update: dict[str, Any],
        owner: str,
        incident: dict[str, Any] | None,
        instance_id: str,
        now: datetime,
    ) -> bool:
        """Count a failed attempt that never reached a commit (the run itself raised).

        Returns False when the lock was lost meanwhile (then nothing is written)."""
        with self.transaction() as conn:
            values = {k: v for k, v in job_update.items() if k != "id"}
            result = conn.execute(
                t.jobs.update()
                .where(t.jobs.c.id == job_update["id"], t.jobs.c.locked_by == owner)
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            if incident is not None:
                conn.execute(t.incidents.insert(), [incident])
                # The rev bump makes any run that loaded the old state conflict and re-read.
                conn.execute(
                    t.instances.update()
                    .where(t.instances.c.id == instance_id, t.instances.c.state == "active")
                    .values(state="incident", rev=t.instances.c.rev + 1, updated_at=now)
                )
            return True

    def retry_job(self, job_id: str, retries: int, now: datetime) -> dict[str, Any]:
        """Operator retry: give the job ``retries`` attempts, due now, and resolve its incidents."""
        with self.transaction() as conn:
            job = conn.execute(sa.select(t.jobs).where(t.jobs.c.id == job_id)).mappings().first()
            if job is None:
                raise KeyError(job_id)
            conn.execute(
                t.jobs.update()
                .where(t.jobs.c.id == job_id)
                .values(
                    retries_left=retries,
                    due_at=now,
                    locked_by=None,
                    lock_expires_at=None,
                    rev=t.jobs.c.rev + 1,
                )
            )
            conn.execute(
                t.incidents.update()
                .where(t.incidents.c.job_id == job_id, t.incidents.c.resolved_at.is_(None))
                .values(resolved_at=now)
            )
            self._refresh_incident_state(conn, job["instance_id"], now)
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")
            return dict(job)

    def resolve_incident(self, incident_id: str, now: datetime) -> None:
        with self.transaction() as conn:
            row = (
                conn.execute(sa.select(t.incidents).where(t.incidents.c.id == incident_id))
                .mappings()
                .first()
            )
            if row is None:
                raise KeyError(incident_id)
            conn.execute(
                t.incidents.update().where(t.incidents.c.id == incident_id).values(resolved_at=now)
            )
            self._refresh_incident_state(conn, row["instance_id"], now)

    @staticmethod
    def _refresh_incident_state(conn: Connection, instance_id: str, now: datetime) -> None:
        open_count = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.incidents)
            .where(t.incidents.c.instance_id == instance_id, t.incidents.c.resolved_at.is_(None))
        ).scalar_one()
        if open_count == 0:
            conn.execute(
                t.instances.update()
                .where(t.instances.c.id == instance_id, t.instances.c.state == "incident")
                .values(state="active", rev=t.instances.c.rev + 1, updated_at=now)
            )

    @reconnect.retry_read
    def next_due_job(self, handlers: Collection[str] | None = None) -> datetime | None:
        """When the next job can run (of those ``acquire_jobs(handlers=...)`` would take)."""
        free, locked, params = _NEXT_FREE_DUE, _NEXT_LOCK_END, {}
        if handlers is not None:
            free, locked = free.where(_RUNNABLE_HERE), locked.where(_RUNNABLE_HERE)
            params = {"b_handlers": sorted(handlers)}
        with self.transaction(write=False) as conn:
            values = [conn.execute(q, params).scalar() for q in (free, locked)]
        found: list[datetime] = [v for v in values if v is not None]
        return min(found, default=None)

    # -- jobs and incidents (reads) -----------------------------------------------------

    @reconnect.retry_read
    def jobs(
        self, instance_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        query = sa.select(t.jobs).order_by(t.jobs.c.due_at, t.jobs.c.id)
        if instance_id is not None:
            query = query.where(t.jobs.c.instance_id == instance_id)
        if limit is not None:
            query = query.limit(limit)
        with self.transaction(write=False) as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    @reconnect.retry_read
    def job(self, job_id: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = conn.execute(sa.select(t.jobs).where(t.jobs.c.id == job_id)).mappings().first()
            return dict(row) if row else None

    @reconnect.retry_read
    def incidents(
        self, instance_id: str | None = None, open_only: bool = True, limit: int | None = None
    ) -> list[dict[str, Any]]:
        query = sa.select(t.incidents).order_by(t.incidents.c.created_at, t.incidents.c.id)
        if instance_id is not None:
            query = query.where(t.incidents.c.instance_id == instance_id)
        if open_only:
            query = query.where(t.incidents.c.resolved_at.is_(None))
        if limit is not None:
            query = query.limit(limit)
        with self.transaction(write=False) as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    @reconnect.retry_read
    def incident(self, incident_id: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = (
                conn.execute(sa.select(t.incidents).where(t.incidents.c.id == incident_id))
                .mappings()
                .first()
            )
            return dict(row) if row else None
