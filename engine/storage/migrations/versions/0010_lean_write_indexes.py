"""fewer index entries per write: history by instance once, business keys only where set;
open incidents in their listing's whole order

- ``ix_sw_history_instance_id`` (instance_id) goes: ``ix_sw_history_open`` (instance_id,
  ended_at, activity_id) starts with the same column and serves every read by instance, so each
  history row paid for two index entries where one does the work.
- ``ix_sw_instances_business_key`` holds only the instances that have a business key (partial,
  ``business_key IS NOT NULL``): every read of it compares the key with ``=``, which both SQLite
  and PostgreSQL know to imply the condition, and most instances have none.
- ``ix_sw_incidents_open`` becomes (created_at, id) of the open incidents only (partial,
  ``resolved_at IS NULL``) instead of (resolved_at, created_at): ``incidents(limit=n)`` orders
  by (created_at, id), and neither planner reads an index in order past an ``IS NULL``
  column, so SQLite sorted each page's tail and PostgreSQL read and sorted every open
  incident (10,000 of them: 5-12 ms) instead of stopping at ``n``. Resolved incidents, which
  only accumulate, leave the index.

With the time-ordered row ids of ``engine.core.ids`` this keeps a write on a database of
millions of rows as cheap as on an empty one (docs/benchmarks.md, "Scale").

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 20:10:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_HAS_KEY = sa.text("business_key IS NOT NULL")


def _existing(table: str) -> set[str]:
    return {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table) if ix["name"]}


_OPEN = sa.text("resolved_at IS NULL")


def _replace_incidents_open(columns: list[str], **where: Any) -> None:
    if "ix_sw_incidents_open" in _existing("sw_incidents"):
        op.drop_index("ix_sw_incidents_open", table_name="sw_incidents")
    op.create_index("ix_sw_incidents_open", "sw_incidents", columns, **where)


def upgrade() -> None:
    _replace_incidents_open(["created_at", "id"], sqlite_where=_OPEN, postgresql_where=_OPEN)
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
    _replace_incidents_open(["resolved_at", "created_at"])
    op.drop_index("ix_sw_instances_business_key", table_name="sw_instances")
    op.create_index("ix_sw_instances_business_key", "sw_instances", ["business_key"])
    op.create_index("ix_sw_history_instance_id", "sw_history", ["instance_id"])
