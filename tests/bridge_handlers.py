"""Handlers of the reference worker (``engine.bridge.worker``) run by the bridge tests."""

from __future__ import annotations

from typing import Any

from engine import BpmnError


def copy(task: dict[str, Any]) -> dict[str, Any]:
    """Answers each task with what it was given, so a test can check that answers land."""
    variables = task["variables"]
    if variables.get("decline"):
        raise BpmnError("DECLINED", "declined by the worker", {"declined_item": variables["item"]})
    return {f"copied_{task['task_id']}": variables.get("item")}
