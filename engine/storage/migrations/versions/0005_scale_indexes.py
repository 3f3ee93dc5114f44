"""indexes for a large database: instances by state and open incidents oldest first, runnable jobs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sw_instances_state_created", "sw_instances", ["state", "created_at", "id"])
    op.create_index("ix_sw_incidents_open", "sw_incidents", ["resolved_at", "created_at", "id"])
    op.create_index(
        "ix_sw_jobs_runnable",
        "sw_jobs",
        ["due_at", "id"],
        sqlite_where=sa.text("retries_left > 0"),
        postgresql_where=sa.text("retries_left > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_sw_jobs_runnable", table_name="sw_jobs")
    op.drop_index("ix_sw_incidents_open", table_name="sw_incidents")
    op.drop_index("ix_sw_instances_state_created", table_name="sw_instances")
