"""deployments keep their source (Camunda's ``deployment-source``: "Camunda Modeler", an app)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 07:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sw_deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sw_deployments", schema=None) as batch_op:
        batch_op.drop_column("source")
