"""Counts read at every metrics scrape (``engine.work.metrics``): single indexed statements.

- open incidents by kind: ``resolved_at IS NULL``, the condition of the partial
  ``ix_sw_incidents_open`` (open incidents by ``created_at``, ``id``; migration 0010);
- jobs due now and free to run (unlocked, or their lock expired), with retries left, of
  instances not suspended: a range of the partial ``ix_sw_jobs_runnable`` (``due_at``, ``id``
  where ``retries_left > 0``, migration 0008), so only the due jobs are read, never the timers
  due later. The backlog an operator watches grow when executors cannot keep up.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from engine.storage import schema as t
from engine.storage.store_jobs import RUNNABLE_JOB

if TYPE_CHECKING:
    from engine.storage.store import Store

_OPEN_INCIDENTS = (
    sa.select(t.incidents.c.kind, sa.func.count())
    .where(t.incidents.c.resolved_at.is_(None))
    .group_by(t.incidents.c.kind)
)

_j = t.jobs
_DUE_JOBS = (
    sa.select(sa.func.count())
    .select_from(_j)
    .where(
        RUNNABLE_JOB,
        _j.c.due_at <= sa.bindparam("b_now"),
        sa.or_(_j.c.locked_by.is_(None), _j.c.lock_expires_at <= sa.bindparam("b_now")),
        ~sa.select(t.instances.c.id)
        .where(t.instances.c.id == _j.c.instance_id, t.instances.c.suspended.is_(True))
        .exists(),
    )
)


def open_incidents(store: Store) -> dict[str, int]:
    """Open incidents by kind (``failed-job``, ``failed-external-task``)."""
    with store.transaction(write=False) as conn:
        return {str(kind): int(n) for kind, n in conn.execute(_OPEN_INCIDENTS).all()}


def due_jobs(store: Store, now: datetime) -> int:
    """Jobs due at ``now`` that no live lock holds."""
    with store.transaction(write=False) as conn:
        return int(conn.execute(_DUE_JOBS, {"b_now": now}).scalar() or 0)


__all__ = ["due_jobs", "open_incidents"]
