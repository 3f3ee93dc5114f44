"""indexes for the operator console (issue 17)

The console's instance list pages by keyset on ``(created_at, id)``, newest first, over all
instances, one process key or one state: an index for each keeps a page a short index range
scan with 100,000 instances. Per-activity token counts read the open history rows of running
instances (``sw_history (instance_id, ended_at, activity_id)``), and the incident page the open
incidents oldest first (``sw_incidents (resolved_at, created_at)``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sw_instances_created", "sw_instances", ["created_at", "id"])
    op.create_index(
        "ix_sw_instances_key_created", "sw_instances", ["process_key", "created_at", "id"]
    )
    op.create_index("ix_sw_instances_state_created", "sw_instances", ["state", "created_at", "id"])
    op.create_index("ix_sw_history_open", "sw_history", ["instance_id", "ended_at", "activity_id"])
    op.create_index("ix_sw_incidents_open", "sw_incidents", ["resolved_at", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sw_incidents_open", table_name="sw_incidents")
    op.drop_index("ix_sw_history_open", table_name="sw_history")
    op.drop_index("ix_sw_instances_state_created", table_name="sw_instances")
    op.drop_index("ix_sw_instances_key_created", table_name="sw_instances")
    op.drop_index("ix_sw_instances_created", table_name="sw_instances")
