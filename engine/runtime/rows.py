"""Rows of the store as the public value objects of ``engine.core.values`` (what
``ProcessEngine``'s reads return), and new job rows."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.core import ids
from engine.core.values import HistoryEntry, Incident, Job, ProcessInstance


def instance(row: Mapping[str, Any]) -> ProcessInstance:
    return ProcessInstance(
        id=row["id"],
        process_key=row["process_key"],
        version=int(row["version"]),
        business_key=row["business_key"],
        state=row["state"],
        variables=copy.deepcopy(row["variables"]),
        waiting_at=list(row["waiting_at"]),
        definition_id=row["definition_id"],
        created_at=row["created_at"],
        ended_at=row["ended_at"],
        suspended=bool(row.get("suspended", False)),
    )


def history_entry(row: Mapping[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        activity_id=row["activity_id"],
        activity_type=row["activity_type"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        outcome=row["outcome"],
        error=row["error"],
        activity_name=row["activity_name"],
    )


def job_attempts(row: Mapping[str, Any]) -> int:
    """Attempts made at the job's activity: a retry job of a failed synchronous call counts
    that call too (its row counts only the job's own attempts)."""
    payload = row.get("payload") or {}
    sync = row["kind"] == "async-continuation" and bool(payload.get("sync", True))
    return int(row["attempts"]) + (1 if sync else 0)


def job(row: Mapping[str, Any]) -> Job:
    return Job(
        id=row["id"],
        instance_id=row["instance_id"],
        activity_id=row["activity_id"],
        kind=row["kind"],
        retries_left=int(row["retries_left"]),
        due_at=row["due_at"],
        attempts=job_attempts(row),
        last_error=row["last_error"],
        locked_by=row["locked_by"],
        lock_expires_at=row["lock_expires_at"],
        stacktrace=row["stacktrace"],
        created_at=row["created_at"],
        definition_id=row.get("definition_id"),
    )


def incident(row: Mapping[str, Any]) -> Incident:
    return Incident(
        id=row["id"],
        instance_id=row["instance_id"],
        activity_id=row["activity_id"],
        job_id=row["job_id"],
        message=row["message"],
        stacktrace=row["stacktrace"],
        created_at=row["created_at"],
        resolved_at=row["resolved_at"],
        kind=row["kind"],
    )


def new_job(
    kind: str,
    *,
    activity_id: str,
    due_at: datetime,
    retries: int,
    created_at: datetime,
    payload: dict[str, Any],
    instance_id: str | None = None,
    task_id: str | None = None,
    definition_id: str | None = None,
    handler: str | None = None,
) -> dict[str, Any]:
    """A new, unlocked ``sw_jobs`` row (``handler``: the one its run calls first, if any)."""
    row: dict[str, Any] = {
        "id": ids.new_id(),
        "instance_id": instance_id,
        "activity_id": activity_id,
        "task_id": task_id,
        "kind": kind,
        "due_at": due_at,
        "retries_left": retries,
        "attempts": 0,
        "last_error": None,
        "stacktrace": None,
        "locked_by": None,
        "lock_expires_at": None,
        "payload": payload,
        "rev": 1,
        "created_at": created_at,
        "handler": handler,
    }
    if definition_id is not None:
        row["definition_id"] = definition_id
    return row
