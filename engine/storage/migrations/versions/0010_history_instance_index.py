"""two index writes less on the hot path of every start

- ``ix_sw_history_instance_id`` dropped: ``ix_sw_history_open`` (instance_id, ended_at,
  activity_id, migration 0005) begins with the instance id, so every read and delete of an
  instance's history uses it as well as the index on ``instance_id`` alone did; that index only
  cost one more b-tree write per history row inserted (three per one-task ``start()``).
- ``ix_sw_instances_business_key`` partial (``business_key IS NOT NULL``): ``business_key = ?``
  implies the condition, so lookups by business key use it as before, and an instance started
  without one writes no entry there.

docs/benchmarks.md, "Third pass".

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

_HAS_KEY = sa.text("business_key IS NOT NULL")


def _existing(table: str) -> set[str]:
    return {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table) if ix["name"]}


def upgrade() -> None:
    if "ix_sw_history_instance_id" in _existing("sw_history"):
        op.drop_index("ix_sw_history_instance_id", table_name="sw_history")
    if "ix_sw_instances_business_key" in _existing("sw_instances"):
        op.drop_index("ix_sw_instances_business_key", table_name="sw_instances")
    op.create_index(
        "ix_sw_instances_business_key",
        "sw_instances",
        ["business_key"],
        sqlite_where=_HAS_KEY,
        postgresql_where=_HAS_KEY,
    )


def downgrade() -> None:
    op.drop_index("ix_sw_instances_business_key", table_name="sw_instances")
    op.create_index("ix_sw_instances_business_key", "sw_instances", ["business_key"])
    op.create_index("ix_sw_history_instance_id", "sw_history", ["instance_id"])
