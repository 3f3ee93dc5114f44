"""The public value objects: what the engine's calls return and what handlers receive.

All are frozen snapshots read from the database; call the engine again for fresh state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

INSTANCE_STATES = ("active", "completed", "incident", "terminated")


@dataclass(frozen=True)
class Deployment:
    id: str
    name: str
    process_keys: tuple[str, ...]
    versions: Mapping[str, int]
    created_at: datetime
    #: True when the content was already deployed and this is the existing deployment.
    existing: bool = False
    #: Who deployed it (``deploy(..., deployment_source=)``; Camunda's ``deployment-source``).
    source: str | None = None


@dataclass(frozen=True)
class ProcessDefinition:
    id: str
    key: str
    version: int
    deployment_id: str
    resource: str
    created_at: datetime


#: ``ProcessInstance.state`` values after which nothing more happens to an instance.
ENDED_STATES = ("completed", "terminated")


def has_ended(state: str) -> bool:
    """An instance in ``state`` has completed or was terminated."""
    return state in ENDED_STATES


@dataclass(frozen=True)
class ProcessInstance:
    id: str
    process_key: str
    version: int
    business_key: str | None
    state: str
    variables: dict[str, Any]
    waiting_at: list[str]
    definition_id: str = ""
    created_at: datetime | None = None
    ended_at: datetime | None = None
    #: True while ``ProcessEngine.suspend`` holds it (no job, timer or external task runs).
    suspended: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    activity_id: str
    activity_type: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    error: str | None = None
    activity_name: str | None = None


@dataclass(frozen=True)
class Job:
    """A due piece of work. ``instance_id`` is None for a definition's job (a timer start
    event), which names its ``definition_id`` instead."""

    id: str
    instance_id: str | None
    activity_id: str
    kind: str
    retries_left: int
    due_at: datetime
    attempts: int
    last_error: str | None
    locked_by: str | None
    lock_expires_at: datetime | None
    stacktrace: str | None = None
    created_at: datetime | None = None
    definition_id: str | None = None


@dataclass(frozen=True)
class Incident:
    id: str
    instance_id: str | None
    activity_id: str
    job_id: str | None
    message: str
    stacktrace: str | None
    created_at: datetime
    resolved_at: datetime | None = None
    kind: str = "failed-job"

    @property
    def external_task_id(self) -> str | None:
        """The failed external task to retry, for ``kind == "failed-external-task"`` (whose
        ``job_id`` column names it, as Camunda's incident ``configuration`` does)."""
        return self.job_id if self.kind == "failed-external-task" else None


@dataclass(frozen=True)
class TaskContext:
    """What a handler receives. ``variables`` is a read-only view of a private copy:
    a handler changes the process only through the mapping it returns."""

    variables: Mapping[str, Any]
    instance_id: str
    activity_id: str
    business_key: str | None
    attempt: int
    idempotency_key: str
    process_key: str = ""
    topic: str | None = None
    #: Camunda 7 ``camunda:property`` / ``camunda:field`` values, Camunda 8 ``zeebe:taskHeaders``.
    properties: Mapping[str, Any] = field(default_factory=dict)
    #: The listener event (``start``, ``end``, ``take``, ``create``...) when a listener calls
    #: the handler; None for a task's own handler.
    event: str | None = None


@dataclass(frozen=True)
class ExternalTask:
    """An external task as a worker or operator sees it (``eng.external_tasks``).

    ``variables`` are the parked task's own data (what a synchronous handler of the same task
    would see: process variables plus multi-instance item variables), narrowed to the names a
    worker asked for. ``retries`` is None until a worker reported a failure; ``worker_id`` is
    the holder of the lock (which may have expired: check ``lock_expires_at``).
    """

    id: str
    topic: str
    instance_id: str
    activity_id: str
    variables: dict[str, Any]
    retries: int | None
    lock_expires_at: datetime | None
    business_key: str | None
    worker_id: str | None = None
    error_message: str | None = None
    error_details: str | None = None
    created_at: datetime | None = None
    process_key: str = ""
    #: "open" (fetchable when due and unlocked) or "failed" (retries spent: an incident is open).
    state: str = "open"
    #: Failures reported so far; a pooled handler's ``TaskContext.attempt`` is this + 1.
    attempts: int = 0
    #: When the task becomes fetchable (later than ``created_at`` after a failure with a timeout).
    due_at: datetime | None = None
    priority: int = 0
    definition_id: str | None = None


@dataclass(frozen=True)
class UserTask:
    """An open user (or manual) task: ``ProcessEngine.tasks()`` lists them."""

    id: str
    instance_id: str
    activity_id: str
    name: str | None
    assignee: str | None
    candidate_users: list[str]
    candidate_groups: list[str]
    due_at: datetime | None
    follow_up_at: datetime | None
    priority: int
    form_key: str | None
    created_at: datetime
    process_key: str = ""


@dataclass(frozen=True)
class VariableChange:
    """One change made by ``set_variables`` / ``remove_variables`` (``variable_history()``)."""

    instance_id: str
    name: str
    operation: str  # "set" | "removed"
    value: Any
    user: str | None
    at: datetime
