"""a partial index of runnable jobs, so acquisition never walks jobs out of retries

Job acquisition walks only jobs with retries left (``ix_sw_jobs_runnable``, partial), so jobs out
of retries, their incidents open, never slow it down (docs/benchmarks.md, "Scale").
``instances(state=..., limit=...)`` and ``incidents(limit=...)`` read the console's indexes of
migration 0005 (``ix_sw_instances_state_created``, ``ix_sw_incidents_open``); they are listed here
too and created only if missing, so a database never misses them whatever it went through.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:10:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES: list[tuple[str, str, list[str], dict[str, Any]]] = [
    ("ix_sw_instances_state_created", "sw_instances", ["state", "created_at", "id"], {}),
    ("ix_sw_incidents_open", "sw_incidents", ["resolved_at", "created_at"], {}),
    (
        "ix_sw_jobs_runnable",
        "sw_jobs",
        ["due_at", "id"],
        {
            "sqlite_where": sa.text("retries_left > 0"),
            "postgresql_where": sa.text("retries_left > 0"),
        },
    ),
]


def _existing(table: str) -> set[str]:
    return {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table) if ix["name"]}


def upgrade() -> None:
    for name, table, columns, options in INDEXES:
        if name not in _existing(table):
            op.create_index(name, table, columns, **options)


def downgrade() -> None:
    # The console's two indexes belong to 0005: only the runnable-jobs index goes.
    if "ix_sw_jobs_runnable" in _existing("sw_jobs"):
        op.drop_index("ix_sw_jobs_runnable", table_name="sw_jobs")
