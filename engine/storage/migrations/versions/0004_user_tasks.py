"""user tasks, suspension, variable history (operating running instances, issue 15)

``sw_user_tasks`` holds one row per open user task (with ``sw_task_candidates`` for indexed
candidate lookups), ``sw_instances.suspended`` keeps a suspended instance's work from being
acquired, ``sw_variable_history`` records set_variables/remove_variables, and an index on
``sw_instances (definition_id, ended_at)`` serves history cleanup.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-02 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.storage.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_UTC = engine.storage.schema.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("sw_instances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("suspended", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_sw_instances_ended", ["definition_id", "ended_at"], unique=False)
    op.create_table(
        "sw_user_tasks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("activity_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("process_key", sa.String(length=255), nullable=False),
        sa.Column("assignee", sa.String(length=255), nullable=True),
        sa.Column("candidate_users", sa.JSON(), nullable=False),
        sa.Column("candidate_groups", sa.JSON(), nullable=False),
        sa.Column("due_at", _UTC(timezone=True), nullable=True),
        sa.Column("follow_up_at", _UTC(timezone=True), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("form_key", sa.String(length=1024), nullable=True),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sw_user_tasks_instance_id", "sw_user_tasks", ["instance_id"])
    op.create_index("ix_sw_user_tasks_assignee", "sw_user_tasks", ["assignee", "created_at"])
    op.create_index("ix_sw_user_tasks_key", "sw_user_tasks", ["process_key", "created_at"])
    op.create_index("ix_sw_user_tasks_created", "sw_user_tasks", ["created_at", "id"])
    op.create_table(
        "sw_task_candidates",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "kind", "name"),
    )
    op.create_index("ix_sw_task_candidates_instance_id", "sw_task_candidates", ["instance_id"])
    op.create_index("ix_sw_task_candidates_name", "sw_task_candidates", ["kind", "name", "task_id"])
    op.create_table(
        "sw_variable_history",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_sw_variable_history_instance",
        "sw_variable_history",
        ["instance_id", "created_at", "pos"],
    )


def downgrade() -> None:
    op.drop_table("sw_variable_history")
    op.drop_table("sw_task_candidates")
    op.drop_table("sw_user_tasks")
    with op.batch_alter_table("sw_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_sw_instances_ended")
        batch_op.drop_column("suspended")
