"""The database schema, as SQLAlchemy Core tables.

The tables are created and upgraded by the Alembic migrations in ``engine/migrations``; this
module only describes them for queries. A change here goes with a new migration revision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend.

    SQLite keeps them as ISO text, which compares in time order because every value is UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the engine stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - pysqlite parses DateTime itself
            value = datetime.fromisoformat(value)
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


#: The PostgreSQL channel a commit that creates work NOTIFYs (``engine.storage.notify``).
NOTIFY_CHANNEL = "spillway_jobs"

metadata = sa.MetaData()

deployments = sa.Table(
    "sw_deployments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    #: Who deployed it, as the client says (Camunda's ``deployment-source``); None if unsaid.
    sa.Column("source", sa.String(255), nullable=True),
)

resources = sa.Table(
    "sw_resources",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(1024), primary_key=True),
    sa.Column("content", sa.LargeBinary(), nullable=False),
)

definitions = sa.Table(
    "sw_definitions",
    metadata,
    sa.Column("id", sa.String(300), primary_key=True),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("resource", sa.String(1024), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("message_starts", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("key", "version", name="uq_sw_definitions_key_version"),
)

instances = sa.Table(
    "sw_instances",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("definition_id", sa.String(300), nullable=False),
    sa.Column("process_key", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("business_key", sa.String(255), nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("waiting_at", sa.JSON(), nullable=False),
    sa.Column("variables", sa.JSON(), nullable=False),
    sa.Column("open_activities", sa.JSON(), nullable=False),
    sa.Column("data", sa.Text(), nullable=False),
    sa.Column("format", sa.Integer(), nullable=False),
    sa.Column("rev", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    # Suspended instances' jobs, timers and external tasks are never acquired (runtime.operations).
    sa.Column("suspended", sa.Boolean(), nullable=False, default=False, server_default=sa.false()),
    # Only the instances that have a key; a read by ``business_key = ?`` implies the condition
    # on both databases (migration 0010).
    sa.Index(
        "ix_sw_instances_business_key",
        "business_key",
        sqlite_where=sa.text("business_key IS NOT NULL"),
        postgresql_where=sa.text("business_key IS NOT NULL"),
    ),
    sa.Index("ix_sw_instances_key_state", "process_key", "state"),
    # History cleanup scans each definition's ended instances by end time.
    sa.Index("ix_sw_instances_ended", "definition_id", "ended_at"),
    # The console's instance list pages by keyset on (created_at, id), newest first, over all
    # instances or those of one key or state (migration 0005).
    sa.Index("ix_sw_instances_created", "created_at", "id"),
    sa.Index("ix_sw_instances_key_created", "process_key", "created_at", "id"),
    # Also ``instances(state=..., limit=...)``: oldest first, stopped at the limit.
    sa.Index("ix_sw_instances_state_created", "state", "created_at", "id"),
)

history = sa.Table(
    "sw_history",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # Read by instance through ix_sw_history_open, which starts with it (migration 0010).
    sa.Column("instance_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Column("activity_name", sa.String(255), nullable=True),
    sa.Column("activity_type", sa.String(64), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("outcome", sa.String(20), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    # The console counts an instance's open activities (tokens) by activity (migration 0005);
    # also every read and delete of an instance's history, by its prefix (migration 0010 dropped
    # the index on instance_id alone: one index less to write per history row).
    sa.Index("ix_sw_history_open", "instance_id", "ended_at", "activity_id"),
)

subscriptions = sa.Table(
    "sw_subscriptions",
    metadata,
    sa.Column("instance_id", sa.String(64), primary_key=True),
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Column("business_key", sa.String(255), nullable=True),
    #: A Camunda 8 message's correlation key, evaluated when the wait began (None without).
    sa.Column("correlation_key", sa.String(255), nullable=True),
    sa.Index("ix_sw_subscriptions_kind_name", "kind", "name"),
)

jobs = sa.Table(
    "sw_jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # NULL for a definition's job (a timer start event), named by definition_id instead.
    sa.Column("instance_id", sa.String(64), nullable=True, index=True),
    sa.Column("definition_id", sa.String(300), nullable=True, index=True),
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("retries_left", sa.Integer(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("stacktrace", sa.Text(), nullable=True),
    sa.Column("locked_by", sa.String(255), nullable=True),
    sa.Column("lock_expires_at", UTCDateTime(), nullable=True),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("rev", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # The handler the job's run calls first (a service task's retry or async-before job): only
    # an executor that has it registered acquires the job. NULL: any executor (timers...).
    sa.Column("handler", sa.String(255), nullable=True),
    sa.Index("ix_sw_jobs_due", "retries_left", "due_at"),
    # The listing of every job in due order (``jobs()``).
    sa.Index("ix_sw_jobs_due_at", "due_at", "id"),
    # Acquisition scans runnable due jobs in due order and stops at its batch size; jobs out of
    # retries (an incident open) are not in it (migration 0008; store_jobs.RUNNABLE_JOB).
    sa.Index(
        "ix_sw_jobs_runnable",
        "due_at",
        "id",
        sqlite_where=sa.text("retries_left > 0"),
        postgresql_where=sa.text("retries_left > 0"),
    ),
    # The locked jobs only (those running, or left by a crashed owner): the executor's idle
    # wait reads the soonest lock end here (migration 0009; store_jobs.next_due_job).
    sa.Index(
        "ix_sw_jobs_locked",
        "lock_expires_at",
        sqlite_where=sa.text("locked_by IS NOT NULL"),
        postgresql_where=sa.text("locked_by IS NOT NULL"),
    ),
)

incidents = sa.Table(
    "sw_incidents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("instance_id", sa.String(64), nullable=True, index=True),
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Column("job_id", sa.String(64), nullable=True, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("stacktrace", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    # Open incidents only, oldest first: ``incidents(limit=...)`` and the console's incident
    # page read them in order and stop at the limit. Partial, because neither planner orders
    # by the columns after an ``IS NULL`` one (migration 0010; 0005 had resolved_at first).
    sa.Index(
        "ix_sw_incidents_open",
        "created_at",
        "id",
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    ),
)

external_tasks = sa.Table(
    "sw_external_tasks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("instance_id", sa.String(64), nullable=False, index=True),
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("process_key", sa.String(255), nullable=False),
    sa.Column("business_key", sa.String(255), nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("retries", sa.Integer(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("error_details", sa.Text(), nullable=True),
    sa.Column("lock_owner", sa.String(255), nullable=True),
    sa.Column("lock_expires_at", UTCDateTime(), nullable=True),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=False),
    sa.Column("rev", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.Index("ix_sw_external_tasks_fetch", "topic", "state", "due_at"),
)

outbox = sa.Table(
    "sw_outbox",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("published_at", UTCDateTime(), nullable=True, index=True),
)

# -- operating running instances (issue 15; migration 0004) ------------------------

user_tasks = sa.Table(
    "sw_user_tasks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("instance_id", sa.String(64), nullable=False, index=True),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("process_key", sa.String(255), nullable=False),
    sa.Column("assignee", sa.String(255), nullable=True),
    sa.Column("candidate_users", sa.JSON(), nullable=False),
    sa.Column("candidate_groups", sa.JSON(), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=True),
    sa.Column("follow_up_at", UTCDateTime(), nullable=True),
    sa.Column("priority", sa.Integer(), nullable=False),
    sa.Column("form_key", sa.String(1024), nullable=True),
    sa.Column("rev", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # A task list: one user's tasks, oldest first.
    sa.Index("ix_sw_user_tasks_assignee", "assignee", "created_at"),
    sa.Index("ix_sw_user_tasks_key", "process_key", "created_at"),
    sa.Index("ix_sw_user_tasks_created", "created_at", "id"),
)

#: One row per candidate user ("user") or group ("group") of a user task, for indexed lookups.
task_candidates = sa.Table(
    "sw_task_candidates",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("instance_id", sa.String(64), nullable=False, index=True),
    #: The task's ``created_at``, copied so that one candidate's tasks are read oldest first
    #: from the index below and a limited task list stops early (migration 0009).
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_sw_task_candidates_listing", "kind", "name", "created_at", "task_id"),
)

variable_history = sa.Table(
    "sw_variable_history",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("instance_id", sa.String(64), nullable=False),
    sa.Column("pos", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("operation", sa.String(16), nullable=False),
    sa.Column("value", sa.JSON(), nullable=True),
    sa.Column("user_id", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_sw_variable_history_instance", "instance_id", "created_at", "pos"),
)
