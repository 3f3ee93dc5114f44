"""What an instance's task tree says about it, read when a run finishes: where tokens are, where
the instance waits, its process variables, and the message and signal subscriptions it holds.

Pure reads of a SpiffWorkflow ``BpmnWorkflow``: nothing here changes the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.end_event import EndEvent
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState

from engine.bpmn import correlation_keys, event_subprocesses, subprocess_mappings
from engine.bpmn.specs import ServiceTask
from engine.bpmn.task_tree import caught_definitions, is_visible, is_waiting_event

#: Task states in which a token is at a task.
OPEN_STATES = TaskState.READY | TaskState.STARTED | TaskState.WAITING

#: Subscription kinds of event subprocesses an event starts: (kind, definition, row suffix).
_ESP_SUBSCRIPTIONS = (
    ("message", MessageEventDefinition, ""),
    ("signal", SignalEventDefinition, "/s"),
)


def open_tasks(workflow: Any) -> list[Any]:
    """Visible tasks where a token is (READY, STARTED or WAITING): one tree walk."""
    return [t for t in workflow.get_tasks(state=OPEN_STATES) if is_visible(t)]


def waiting_at(open_tasks: list[Any]) -> list[str]:
    """The BPMN ids where the instance waits: user and manual tasks, catch events someone can
    trigger (not boundary or start events), parked service tasks; sorted."""
    ids = set()
    for task in open_tasks:
        spec = task.task_spec
        if (
            (task.state == TaskState.READY and spec.manual)
            or (
                task.state == TaskState.WAITING
                and isinstance(spec, CatchingEvent)
                and not isinstance(spec, BoundaryEvent | StartEvent)
                and is_waiting_event(task)
            )
            or (task.state == TaskState.STARTED and isinstance(spec, ServiceTask))
        ):
            ids.add(spec.bpmn_id)
    return sorted(ids)


def variables(workflow: Any, open_tasks: list[Any]) -> dict[str, Any]:
    """Process-level variables: the end data when completed, else the merged data of the
    tasks where tokens are (in tree order, so later branches win on clashes)."""
    if workflow.completed:
        end = workflow.last_task
        data = dict(end.data) if end is not None else {}
        data.update(workflow.data)
        data.pop("data_objects", None)
        return data
    merged: dict[str, Any] = {}
    # A branch that already reached its end event keeps what it wrote visible, as process
    # variables are in Camunda (its data is on that end event until the process ends).
    for task in workflow.get_tasks(state=TaskState.COMPLETED, skip_subprocesses=True):
        if isinstance(task.task_spec, EndEvent):
            merged.update(task.data)
    for task in open_tasks or [workflow.task_tree]:
        # A token waiting at a join has no data of its own until the join fires: the data
        # is still on the task that brought it there.
        # Locals of the embedded subprocesses around a task are not instance variables.
        if task.parent is not None:
            merged.update(subprocess_mappings.process_data(task.parent))
        merged.update(subprocess_mappings.process_data(task))
    return merged


def subscriptions(
    workflow: Any,
    open_tasks: list[Any],
    instance_id: str,
    business_key: str | None,
    variables: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The subscription rows of the messages and signals the instance waits for: at waiting
    tasks, and at the start events of event subprocesses of active scopes. A message row
    carries its Camunda 8 correlation key (``engine.bpmn.correlation_keys``; None without)."""

    def row(
        task_id: str, kind: str, name: str, task_or_spec: Any, key: str | None = None
    ) -> dict[str, Any]:
        spec = getattr(task_or_spec, "task_spec", task_or_spec)
        return {
            "instance_id": instance_id,
            "task_id": task_id,
            "kind": kind,
            "name": name,
            "activity_id": spec.bpmn_id,
            "business_key": business_key,
            "correlation_key": key,
        }

    rows = []
    for task in open_tasks:
        if task.state != TaskState.WAITING:
            continue
        # An event-based gateway waits for several messages (and signals) at one task.
        for n, message in enumerate(caught_definitions(task, MessageEventDefinition)):
            key = str(task.id) if n == 0 else f"{task.id}/{n}"
            correlation = correlation_keys.for_task(task, message.name)
            rows.append(row(key, "message", message.name, task, correlation))
        for n, signal in enumerate(caught_definitions(task, SignalEventDefinition)):
            rows.append(row(f"{task.id}/s{n}", "signal", signal.name, task))
    for scope in event_subprocesses.active_scopes(workflow):
        for kind, cls, suffix in _ESP_SUBSCRIPTIONS:
            for ts in event_subprocesses.subprocess_starts(scope, cls):
                # The event subprocess does not exist until its event comes: the row's task
                # id names the scope and the start event.
                digest = hashlib.sha256(f"{scope.task_tree.id}/{ts.name}{suffix}".encode())
                row_id = f"esp-{digest.hexdigest()[:40]}"
                name = ts.event_definition.name
                correlation = None
                if kind == "message":
                    correlation = correlation_keys.for_scope(ts, scope, name, variables or {})
                rows.append(row(row_id, kind, name, ts, correlation))
    return rows
