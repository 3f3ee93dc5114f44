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


@dataclass(frozen=True)
class ProcessDefinition:
    id: str
    key: str
    version: int
    deployment_id: str
    resource: str
    created_at: datetime


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
    properties: Mapping[str, str] = field(default_factory=dict)
