"""jobs name the handler they call, so an executor only acquires jobs it can run

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 20:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sw_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handler", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sw_jobs", schema=None) as batch_op:
        batch_op.drop_column("handler")
