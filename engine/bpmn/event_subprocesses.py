"""Event subprocesses started by an event (error, escalation, message, signal), scope by scope.

SpiffWorkflow creates such an event subprocess only when an event finds no other catcher in
the whole instance, and only for event subprocesses of the top process; an error thrown in an
embedded subprocess is offered to the scopes around it one by one, but only to tasks already
waiting. BPMN (and Camunda) propagate an error or escalation outwards scope by scope, and in
each scope an event subprocess of that scope catches it as readily as a boundary event on an
activity of it. ``ScopedEventManager`` does that for every throw, whether SpiffWorkflow throws
it (an error end event) or the engine does (a handler's ``BpmnError``), and ``triggerable``
lets message correlation start a message event subprocess in any active scope.

Interrupting the scope is the start event's business (``engine.bpmn.specs.StartEvent``).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    CodeEventDefinition,
    SignalEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util.event import EventManager
from SpiffWorkflow.util.task import TaskState

#: Attribute of the top workflow object: signals thrown during this call (``engine.bpmn.signals``).
#: Never stored.
THROWN_SIGNALS: Final = "_spillway_thrown_signals"


class ScopedEventManager(EventManager):  # type: ignore[misc]
    """SpiffWorkflow's event manager, with errors and escalations caught scope by scope."""

    def catch(self, event: Any, internal: bool = True) -> int:
        if internal and isinstance(event.event_definition, SignalEventDefinition):
            # Thrown in this instance: other instances get it too (engine.bpmn.signals).
            payload = copy.deepcopy(event.payload) if isinstance(event.payload, dict) else {}
            thrown = self.workflow.__dict__.setdefault(THROWN_SIGNALS, [])
            thrown.append((event.event_definition.name, payload))
        if event.target is None or not isinstance(event.event_definition, CodeEventDefinition):
            return int(super().catch(event, internal))
        scope, came_from = event.target, None
        while scope is not None:
            waiting = _waiting(self.tasks.values(), scope, event)
            if waiting:
                for task in waiting:
                    task.task_spec.catch(task, event)
                    task.task_spec._update(task)
                return len(waiting)
            started = start_event_subprocess(scope, event, exclude=_own_esp(scope, came_from))
            if started is not None:
                return 1
            scope, came_from = scope.parent_workflow, scope
        if internal:
            self.workflow.bpmn_events.append(event)
        return 0


def _own_esp(scope: Any, came_from: Any) -> str | None:
    """When an event leaves an event subprocess of ``scope``, that event subprocess (its spec
    name) does not catch it again: Camunda propagates a rethrown escalation or error to the
    scopes around (``EscalationEventSubprocessTest.testReThrowEscalationEventToBoundaryEvent``);
    SpiffWorkflow's event subprocess would restart itself for ever."""
    if came_from is None:
        return None
    name = getattr(came_from.spec, "name", None)
    return str(name) if name in scope.spec.start.trigger_specs else None


def _waiting(tasks: Any, scope: Any, event: Any) -> list[Any]:
    """The tasks waiting in ``scope`` itself (not its subprocesses) that catch ``event``."""
    return [
        t for t in tasks if t.workflow is scope and t.task_spec.event_definition.catches(t, event)
    ]


def install(workflow: Any) -> None:
    """Give a new or loaded workflow the scoped event manager (keeping its waiting tasks)."""
    manager = ScopedEventManager(workflow)
    manager.tasks = workflow.event_manager.tasks
    workflow.event_manager = manager


def _start_events(workflow: Any, name: str) -> list[Any]:
    # ``name`` is the event subprocess's task-spec name; its subprocess spec is filed under the
    # element id (they differ for ids the library uses itself: engine.deploy.spec_names).
    task_spec = workflow.spec.task_specs.get(name)
    spec = workflow.top_workflow.subprocess_specs.get(getattr(task_spec, "spec", name))
    return list(spec.bpmn_start_events) if spec is not None else []


def triggerable(scope: Any, event: Any, exclude: str | None = None) -> str | None:
    """The event subprocess of ``scope`` (its spec name) whose start event catches ``event``
    (never ``exclude``)."""
    for name in scope.spec.start.trigger_specs:
        if name == exclude:
            continue
        if any(ts.event_definition == event.event_definition for ts in _start_events(scope, name)):
            return str(name)
    return None


def start_event_subprocess(scope: Any, event: Any, exclude: str | None = None) -> Any | None:
    """Start the event subprocess of ``scope`` catching ``event`` and deliver the event to its
    start event; the start event's task, or None when no event subprocess of it catches."""
    name = triggerable(scope, event, exclude)
    if name is None:
        return None
    top = scope.top_workflow
    child_id = scope.spec.start.trigger_wf(scope.task_tree, name)
    for task in top.subprocesses[child_id].get_tasks(skip_subprocesses=True):
        spec = task.task_spec
        if isinstance(spec, StartEvent) and spec.event_definition == event.event_definition:
            if task.state != TaskState.WAITING:
                task._set_state(TaskState.WAITING)
            spec.catch(task, event)
            spec._update(task)
            return task
    return None


def can_catch(scope: Any, event: Any) -> bool:
    """Would a throw of ``event`` from ``scope`` be caught, there or in a scope around it?"""
    tasks = scope.top_workflow.event_manager.tasks.values()
    came_from = None
    while scope is not None:
        exclude = _own_esp(scope, came_from)
        if triggerable(scope, event, exclude) is not None or _waiting(tasks, scope, event):
            return True
        scope, came_from = scope.parent_workflow, scope
    return False


def subprocess_starts(scope: Any, kind: type) -> list[Any]:
    """Start event specs of ``scope``'s event subprocesses that an event of ``kind`` (a named
    message or signal) starts."""
    found = []
    for name in dict.fromkeys(scope.spec.start.trigger_specs):  # listed once per start event
        for ts in _start_events(scope, name):
            definition = ts.event_definition
            named = isinstance(definition, kind) and bool(getattr(definition, "name", None))
            if named and ts not in found:
                found.append(ts)
    return found


def active_scopes(workflow: Any) -> list[Any]:
    """The instance's process and its running subprocesses, innermost first."""
    scopes = [sp for sp in workflow.subprocesses.values() if not sp.completed]
    return [*sorted(scopes, key=lambda sp: -sp.depth), workflow]
