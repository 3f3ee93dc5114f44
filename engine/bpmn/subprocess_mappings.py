"""Local variables of embedded subprocesses (``camunda:inputOutput`` on a scope), and what
crosses the boundary of a subprocess or call activity when a BPMN error leaves it.

Camunda 7 makes a subprocess's input parameters local variables of the subprocess scope:
every activity inside sees them, a variable set inside on a name that exists there stays
local, and they end with the scope; output parameters run when the subprocess completes and
write to the parent scope. SpiffWorkflow runs an embedded subprocess as a sub-workflow whose
start copies the subprocess task's data and whose end copies the last task's data back, so:

- the subprocess task keeps its locals in ``internal_data`` (``engine.bpmn.mappings.LOCALS``,
  evaluated by ``engine.bpmn.mappings`` when the task is entered), and ``copy_data`` adds them to
  the sub-workflow's start data, where the activities inside find them as ordinary data;
- ``update_data`` takes them out of what comes back (their final values go back to the
  locals, for the output parameters) and restores the parent's value of a covered name;
- ``process_data`` is a task's data as the instance sees it (``Run.variables``): without the
  locals of the embedded subprocesses around it, as Camunda's instance variables exclude
  the variables of a subprocess scope.

A BPMN error (or escalation) leaving a scope carries the thrower's data in SpiffWorkflow.
``attach`` hooks the throwing events (handler errors: ``Run.throw_error`` calls
``note_thrower``) and the catching boundary events and start events: the payload loses the
locals of the scopes between thrower and catcher, and an error leaving a call activity with
``camunda:out`` mappings carries what those mappings give (Camunda applies them then).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from SpiffWorkflow.bpmn.specs.defaults import CallActivity, TransactionSubprocess
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import CodeEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState

from engine.bpmn import call_mappings, instance_context, mappings

#: internal_data key on a catching event whose caught payload was already filtered.
_FILTERED = "spillway_payload_filtered"
_OPEN = TaskState.READY | TaskState.STARTED | TaskState.WAITING


class _LocalScope:
    """An embedded subprocess whose locals are part of its sub-workflow's data."""

    def copy_data(self, my_task: Any, subworkflow: Any) -> None:
        super().copy_data(my_task, subworkflow)  # type: ignore[misc]
        local = mappings.locals_of(my_task)
        if local:
            start = subworkflow.get_next_task(
                subworkflow.task_tree, skip_subprocesses=True, spec_name="Start"
            )
            start.set_data(**copy.deepcopy(local))

    def update_data(self, my_task: Any, subworkflow: Any) -> None:
        local = mappings.locals_of(my_task)
        outer = my_task.data
        super().update_data(my_task, subworkflow)  # type: ignore[misc]
        if local is None:
            return
        inner = my_task.data
        for name in list(local):
            # The final value is the output parameters' to read; the name is the scope's.
            local[name] = inner.pop(name, None)
            if name in outer:
                inner[name] = outer[name]


# Named as the BPMN elements, which history shows as their activity type.
class SubProcess(_LocalScope, CallActivity):  # type: ignore[misc]
    """``bpmn:subProcess`` (SpiffWorkflow's Camunda parser gives it the CallActivity class)."""


class Transaction(_LocalScope, TransactionSubprocess):  # type: ignore[misc]
    """``bpmn:transaction``."""


def _caller(workflow: Any) -> Any | None:
    """The task running ``workflow`` (a subprocess or call activity), None at the top."""
    task_id = getattr(workflow, "parent_task_id", None)
    return None if task_id is None else workflow.top_workflow.get_task_from_id(task_id)


def _callers(task: Any) -> list[Any]:
    """The subprocess and call activity tasks around ``task``, innermost first."""
    out = []
    caller = _caller(task.workflow)
    while caller is not None:
        out.append(caller)
        caller = _caller(caller.workflow)
    return out


def scope_locals(task: Any) -> dict[str, Any] | None:
    """The locals an embedded subprocess task puts into its sub-workflow's data."""
    return mappings.locals_of(task) if isinstance(task.task_spec, _LocalScope) else None


def process_data(task: Any) -> Mapping[str, Any]:
    """``task.data`` as the instance sees it: without the locals of the embedded subprocesses
    around the task; where a local covers a process variable, the variable."""
    data: Mapping[str, Any] = task.data
    caller = _caller(task.workflow)
    while caller is not None:
        local = scope_locals(caller)
        if local:
            shown = dict(data)
            for name in local:
                shown.pop(name, None)
                if name in caller.data:
                    shown[name] = caller.data[name]
            data = shown
        caller = _caller(caller.workflow)
    return data


# -- BPMN errors and escalations leaving a scope ----------------------------------------------


def note_thrower(task: Any) -> None:
    """Remember the task throwing a BPMN error or escalation for its catcher (this run only:
    a throw is caught in the same step)."""
    task.workflow.top_workflow.spillway_thrower = task


def _on_throw(workflow: Any, task: Any) -> None:
    note_thrower(task)


def _called_outputs(main: Any, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a call activity's ``camunda:out`` mappings give when a BPMN error leaves its
    called process: evaluated over the called process's variables (its open tasks' data,
    then what the error carries). Targets that are the call activity's locals end with it."""
    m: call_mappings.Mappings = main.task_spec.mappings
    top = main.workflow.top_workflow
    called = top.subprocesses.get(main.id)
    source: dict[str, Any] = {}
    if called is not None:
        for task in called.get_tasks(state=_OPEN, skip_subprocesses=True):
            source.update(task.data)
    source.update(payload)
    start = called.task_tree if called is not None else main
    values = call_mappings.map_variables(
        [x for x in m.outputs if not x.local],
        source,
        element_id=m.element_id,
        direction="out",
        business_key=instance_context.process_business_key(start),
    )
    return mappings.split(main, values)[1]


def _on_catcher_update(workflow: Any, task: Any) -> None:
    definition = task.task_spec.event_definition
    payload = task.internal_data.get(definition.name)
    if not isinstance(payload, dict) or task.internal_data.get(_FILTERED):
        return
    thrower = getattr(task.workflow.top_workflow, "spillway_thrower", None)
    if thrower is None:
        return
    carried = dict(payload)  # the event's payload may be shared with other catchers
    around = _callers(task)
    # The scopes the error left, innermost first: each one's locals end with it, and a call
    # activity's out mappings decide what its called process passes on.
    for scope in (c for c in _callers(thrower) if c not in around):
        local = scope_locals(scope)
        if isinstance(scope.task_spec, call_mappings.MappedCallActivity):
            if scope.task_spec.mappings is not None:
                carried = _called_outputs(scope, carried)
                continue
            local = mappings.locals_of(scope)  # passed in when nothing is mapped
        for name in local or ():
            # The catcher keeps its own value of a name the local covered.
            carried.pop(name, None)
    task.internal_data[definition.name] = carried
    task.internal_data[_FILTERED] = True


def _on_catcher_complete(workflow: Any, task: Any) -> None:
    task.internal_data.pop(_FILTERED, None)


def attach(task_specs: Iterable[Any]) -> None:
    """Hook the boundary events and start events that can catch a BPMN error or escalation
    thrown inside a subprocess or call activity."""
    for ts in task_specs:
        if not isinstance(getattr(ts, "event_definition", None), CodeEventDefinition):
            continue
        if isinstance(ts, ThrowingEvent):
            if not ts.run_event.is_connected(_on_throw):
                ts.run_event.connect(_on_throw)
            continue
        if not isinstance(ts, BoundaryEvent | StartEvent):
            continue
        if not ts.update_event.is_connected(_on_catcher_update):
            ts.update_event.connect(_on_catcher_update)
        if not ts.completed_event.is_connected(_on_catcher_complete):
            ts.completed_event.connect(_on_catcher_complete)
