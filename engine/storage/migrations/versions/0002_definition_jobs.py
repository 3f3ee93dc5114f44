"""jobs of a process definition (timer start events); jobs in due order

A timer start event's job belongs to the definition, not to an instance: ``instance_id`` may be
NULL and ``definition_id`` names the definition whose start event it fires.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 23:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sw_jobs", schema=None) as batch_op:
        batch_op.alter_column("instance_id", existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column("definition_id", sa.String(length=300), nullable=True))
        batch_op.create_index("ix_sw_jobs_definition_id", ["definition_id"], unique=False)
        batch_op.create_index("ix_sw_jobs_due_at", ["due_at", "id"], unique=False)
    with op.batch_alter_table("sw_incidents", schema=None) as batch_op:
        # A failed timer start job's incident has no instance either.
        batch_op.alter_column("instance_id", existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("sw_incidents", schema=None) as batch_op:
        batch_op.alter_column("instance_id", existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table("sw_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_sw_jobs_due_at")
        batch_op.drop_index("ix_sw_jobs_definition_id")
        batch_op.drop_column("definition_id")
        batch_op.alter_column("instance_id", existing_type=sa.String(length=64), nullable=False)
