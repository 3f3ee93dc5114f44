"""a candidate's task list and the executor's idle wait read their indexes in order

- ``sw_task_candidates.created_at`` (the task's, copied; filled here from ``sw_user_tasks``) and
  ``ix_sw_task_candidates_listing`` (kind, name, created_at, task_id), which replaces
  ``ix_sw_task_candidates_name`` (kind, name, task_id): ``tasks(candidate_group=..., limit=n)``
  reads each candidate's oldest ``n`` tasks and stops, instead of reading and sorting every
  task the candidate may claim (docs/benchmarks.md, "Scale").
- ``ix_sw_jobs_locked`` (lock_expires_at) of the locked jobs only (partial): the executor's
  idle wait (``next_due_job``) reads the soonest lock end there and the first free runnable job
  from ``ix_sw_jobs_runnable`` (0008), instead of every runnable job.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.storage.schema import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_LOCKED = sa.text("locked_by IS NOT NULL")


def _existing(table: str) -> set[str]:
    return {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table) if ix["name"]}


def upgrade() -> None:
    op.add_column("sw_task_candidates", sa.Column("created_at", UTCDateTime(), nullable=True))
    # A candidate row whose task is gone is invisible to every listing (they join the task):
    # dropped rather than given an invented time.
    op.execute(
        "DELETE FROM sw_task_candidates WHERE NOT EXISTS "
        "(SELECT 1 FROM sw_user_tasks u WHERE u.id = sw_task_candidates.task_id)"
    )
    op.execute(
        "UPDATE sw_task_candidates SET created_at = "
        "(SELECT u.created_at FROM sw_user_tasks u WHERE u.id = sw_task_candidates.task_id)"
    )
    with op.batch_alter_table("sw_task_candidates") as batch:
        batch.alter_column("created_at", existing_type=UTCDateTime(), nullable=False)
    if "ix_sw_task_candidates_name" in _existing("sw_task_candidates"):
        op.drop_index("ix_sw_task_candidates_name", table_name="sw_task_candidates")
    op.create_index(
        "ix_sw_task_candidates_listing",
        "sw_task_candidates",
        ["kind", "name", "created_at", "task_id"],
    )
    op.create_index(
        "ix_sw_jobs_locked",
        "sw_jobs",
        ["lock_expires_at"],
        sqlite_where=_LOCKED,
        postgresql_where=_LOCKED,
    )


def downgrade() -> None:
    op.drop_index("ix_sw_jobs_locked", table_name="sw_jobs")
    op.drop_index("ix_sw_task_candidates_listing", table_name="sw_task_candidates")
    op.create_index("ix_sw_task_candidates_name", "sw_task_candidates", ["kind", "name", "task_id"])
    with op.batch_alter_table("sw_task_candidates") as batch:
        batch.drop_column("created_at")
