"""The bridge's message formats: task messages out, result messages back (JSON, UTF-8).

A task message (published by ``engine.bridge.rabbitmq``)::

    {"format": 1, "task_id": "...", "topic": "copy", "instance_id": "...",
     "activity_id": "CopyItem", "process_key": "ExampleProcess", "business_key": null,
     "retries": null, "variables": {...},
     "reply_exchange": "spillway.results", "reply_routing_key": "spillway.results"}

A result message (published by a worker to the reply address), exactly one of::

    {"task_id": "...", "variables": {...}}                        # completed ("variables" optional)
    {"task_id": "...", "failure": {"message": "...", "details": "...",
                                   "retries": 2, "retry_timeout": 5.0}}
    {"task_id": "...", "bpmn_error": {"code": "...", "message": "...", "variables": {...}}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_BODY_BYTES = 16 * 1024 * 1024  # a result larger than this is refused, not parsed


class InvalidMessage(ValueError):
    """A result message the bridge cannot act on; the text says why."""


@dataclass(frozen=True)
class Result:
    """A parsed result message."""

    task_id: str
    kind: str  # "complete" | "failure" | "bpmn_error"
    variables: dict[str, Any] = field(default_factory=dict)
    error_message: str = ""
    error_details: str | None = None
    retries: int = 0
    retry_timeout: float = 0.0
    error_code: str = ""


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def task_body(payload: Mapping[str, Any], reply_exchange: str, reply_routing_key: str) -> bytes:
    """The wire form of an outbox payload (``outbox.task_message``) with its reply address."""
    return encode(
        {**payload, "reply_exchange": reply_exchange, "reply_routing_key": reply_routing_key}
    )


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidMessage(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidMessage(f"{where} must be a non-empty string, got {value!r}"[:200])
    return value


def parse_result(body: bytes) -> Result:
    """Validate a result message; ``InvalidMessage`` names the first problem."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidMessage(f"message of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}") from exc
    msg = _object(data, "the message")
    task_id = _text(msg.get("task_id"), "task_id", required=True)
    assert task_id is not None
    kinds = [k for k in ("failure", "bpmn_error") if k in msg]
    if len(kinds) > 1:
        raise InvalidMessage(f"task {task_id}: both 'failure' and 'bpmn_error' given")
    if not kinds:
        variables = _object(msg.get("variables") or {}, f"task {task_id}: variables")
        return Result(task_id, "complete", variables=variables)
    if kinds[0] == "failure":
        failure = _object(msg["failure"], f"task {task_id}: failure")
        retries = failure.get("retries", 0)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidMessage(f"task {task_id}: failure.retries must be an int >= 0")
        timeout = failure.get("retry_timeout", 0.0)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout < 0
        ):
            raise InvalidMessage(f"task {task_id}: failure.retry_timeout must be seconds >= 0")
        return Result(
            task_id,
            "failure",
            error_message=_text(failure.get("message"), f"task {task_id}: failure.message")
            or "failed",
            error_details=_text(failure.get("details"), f"task {task_id}: failure.details"),
            retries=retries,
            retry_timeout=float(timeout),
        )
    error = _object(msg["bpmn_error"], f"task {task_id}: bpmn_error")
    code = _text(error.get("code"), f"task {task_id}: bpmn_error.code", required=True)
    assert code is not None
    return Result(
        task_id,
        "bpmn_error",
        error_code=code,
        error_message=_text(error.get("message"), f"task {task_id}: bpmn_error.message") or "",
        variables=_object(error.get("variables") or {}, f"task {task_id}: bpmn_error.variables"),
    )


def completed(task_id: str, variables: Mapping[str, Any] | None = None) -> bytes:
    return encode({"task_id": task_id, "variables": dict(variables or {})})


def failed(
    task_id: str,
    message: str,
    details: str | None = None,
    retries: int = 0,
    retry_timeout: float = 0.0,
) -> bytes:
    return encode(
        {
            "task_id": task_id,
            "failure": {
                "message": message,
                "details": details,
                "retries": retries,
                "retry_timeout": retry_timeout,
            },
        }
    )


def bpmn_error(
    task_id: str, code: str, message: str = "", variables: Mapping[str, Any] | None = None
) -> bytes:
    return encode(
        {
            "task_id": task_id,
            "bpmn_error": {"code": code, "message": message, "variables": dict(variables or {})},
        }
    )
