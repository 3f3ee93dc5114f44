"""an index on incidents' resolved_at, so open incidents are counted cheaply (/metrics)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 06:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sw_incidents_resolved", "sw_incidents", ["resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_sw_incidents_resolved", table_name="sw_incidents")
