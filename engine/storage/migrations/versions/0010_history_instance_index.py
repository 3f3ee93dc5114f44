"""one index less on every history row: ``ix_sw_history_instance_id`` dropped

``ix_sw_history_open`` (instance_id, ended_at, activity_id, migration 0005) begins with the
instance id, so every read and delete of an instance's history uses it as well as the index on
``instance_id`` alone did; that index only cost one more b-tree write per history row inserted
(three per one-task ``start()``, docs/benchmarks.md, "Third pass").

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("sw_history")}
    if "ix_sw_history_instance_id" in existing:
        op.drop_index("ix_sw_history_instance_id", table_name="sw_history")


def downgrade() -> None:
    op.create_index("ix_sw_history_instance_id", "sw_history", ["instance_id"])
