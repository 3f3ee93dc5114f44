"""indexes for a large database: instances by state and open incidents oldest first, runnable jobs

``instances(state=..., limit=...)`` and ``incidents(limit=...)`` read in index order and stop
at the limit; job acquisition walks only jobs with retries left (a partial index), so jobs out
of retries, their incidents open, never slow it down (docs/benchmarks.md, "Scale").

The first two are also what the operator console pages by (the console's migration defines
them alike); an index that already exists is left as it is, so the two migrations can follow
each other in either order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:10:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
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
    for name, table, _columns, _options in reversed(INDEXES):
        if name in _existing(table):
            op.drop_index(name, table_name=table)
