"""message subscriptions carry their Camunda 8 correlation key (zeebe:subscription)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sw_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("correlation_key", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sw_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("correlation_key")
