"""What the runtime reads off SpiffWorkflow's task tree, and the history rows of one run.

Visible activities (not SpiffWorkflow's control tasks), their BPMN types, catch events someone
could trigger, the messages a task waits for, and SpiffWorkflow failures named by the task they
happened on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.util.task import TaskIterator

from engine.bpmn.specs import activity_config
from engine.core import ids
from engine.core.errors import EngineError, HandlerError

D = TypeVar("D")

#: SpiffWorkflow's own control tasks: not BPMN activities, so no history and no waits.
_INTERNAL_SPECS = frozenset(
    {
        "BpmnStartTask",
        "SimpleBpmnTask",
        "_EndJoin",
        "BoundaryEventSplit",
        "BoundaryEventJoin",
        "StartEventSplit",
        "StartEventJoin",
    }
)


# SpiffWorkflow's task iterator stops 1,000 levels down the task tree by default (``max_depth``),
# and every ``get_tasks()`` of the library uses that default: in a chain of more than about 1,000
# flow nodes (or a loop that ran that often) the tasks further down were never found READY, and
# the instance looked completed while they never ran. The iterator walks iteratively, so the
# depth is not bounded here; the model size is (engine.core.deep_stack.MAX_FLOW_NODES).
for _iterator in (TaskIterator, BpmnTaskIterator):
    _defaults = _iterator.__init__.__defaults__
    if _defaults is not None and _defaults[1] == 1000:
        _iterator.__init__.__defaults__ = (_defaults[0], sys.maxsize, *_defaults[2:])


@dataclass
class History:
    """Tracks activity history rows for one run."""

    instance_id: str
    open: dict[str, str]  # spiff task id -> history row id (rows open before this run)
    seq: int
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    started: dict[str, datetime] = field(default_factory=dict)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def add(
        self,
        task: Any,
        started_at: datetime,
        ended_at: datetime | None,
        outcome: str | None,
        error: str | None = None,
    ) -> str:
        row_id = ids.new_id()
        self.inserts.append(
            {
                "id": row_id,
                "instance_id": self.instance_id,
                "seq": self._next_seq(),
                "activity_id": task.task_spec.bpmn_id,
                "activity_name": getattr(task.task_spec, "bpmn_name", None),
                "activity_type": activity_type(task.task_spec),
                "started_at": started_at,
                "ended_at": ended_at,
                "outcome": outcome,
                "error": error,
            }
        )
        if ended_at is None:
            self.open[str(task.id)] = row_id
        return row_id

    def record(
        self,
        task: Any,
        started_at: datetime,
        ended_at: datetime,
        outcome: str,
        error: str | None = None,
        *,
        attempt: bool = False,
    ) -> None:
        """End the task's open row (it waited, e.g. for a retry job), or add a finished one.

        ``attempt``: the row is a job's attempt at the task (a retry, an async continuation),
        so it starts when this attempt did, not when the task began to wait for the job."""
        restart = started_at if attempt else None
        if not self.close(str(task.id), ended_at, outcome, error, started_at=restart):
            self.add(task, started_at, ended_at, outcome, error)

    def close(
        self,
        task_id: str,
        ended_at: datetime,
        outcome: str,
        error: str | None = None,
        *,
        started_at: datetime | None = None,
    ) -> bool:
        row_id = self.open.pop(task_id, None)
        if row_id is None:
            return False
        values: dict[str, Any] = {"ended_at": ended_at, "outcome": outcome, "error": error}
        if started_at is not None:
            values["started_at"] = started_at
        for row in self.inserts:
            if row["id"] == row_id:
                row.update(values)
                return True
        self.updates.append({"id": row_id, **values})
        return True


def activity_type(task_spec: Any) -> str:
    element = activity_config(task_spec).get("element")
    if element:
        return str(element)
    name = type(task_spec).__name__
    if name == "NoneTask":
        return "task"  # bpmn:task, as Camunda names its activity type
    return name[0].lower() + name[1:]


_PASSIVE_EVENTS = ("ErrorEventDefinition", "EscalationEventDefinition", "CancelEventDefinition")


def is_waiting_event(task: Any) -> bool:
    """A catch event someone could trigger from outside (message, timer, signal...), as opposed
    to error/escalation boundaries that only listen to their own activity."""
    definition = getattr(task.task_spec, "event_definition", None)
    return type(definition).__name__ not in _PASSIVE_EVENTS


def caught_definitions(task: Any, kind: type[D]) -> list[D]:
    """The named event definitions of ``kind`` (message, signal) a task catches: its own, or
    those of an event-based gateway."""
    definition = getattr(task.task_spec, "event_definition", None)
    found = (
        list(definition.event_definitions)
        if isinstance(definition, MultipleEventDefinition)
        else [definition]
    )
    return [d for d in found if isinstance(d, kind) and getattr(d, "name", None)]


def message_definitions(task: Any) -> list[MessageEventDefinition]:
    """The messages a task catches."""
    return caught_definitions(task, MessageEventDefinition)


def is_visible(task: Any) -> bool:
    return (
        getattr(task.task_spec, "bpmn_id", None) is not None
        and type(task.task_spec).__name__ not in _INTERNAL_SPECS
    )


#: Exceptions SpiffWorkflow's internals raise on what a model feeds them.
# SpiffWorkflowException too: e.g. completing a multi-instance child without its output item.
SPIFF_FAILURES = (
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    IndexError,
    SpiffWorkflowException,
)


def named_failure(exc: Exception, running: Any = None) -> EngineError | None:
    """A HandlerError naming the task for an exception raised inside SpiffWorkflow while it
    worked on a task (a multi-instance collection that is not a list, say); None when no
    SpiffWorkflow frame was working on one (then it is a bug of ours and stays raw)."""
    task, tb = None, exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("my_task")
        if isinstance(candidate, SpiffTask):
            task = candidate
        tb = tb.tb_next
    task = task if task is not None else running
    if task is None:
        return None
    spec = task.task_spec
    hint = ""
    collection = getattr(spec, "data_input", None)
    if isinstance(spec, MultiInstanceTask) and collection is not None:
        hint = f" (its multi-instance collection '{collection.bpmn_id}' must be a list)"
    process_key = task.workflow.top_workflow.spec.name
    return HandlerError(
        f"process '{process_key}' failed at '{spec.bpmn_id or spec.name}': "
        f"{type(exc).__name__}: {exc}{hint}",
        activity_id=spec.bpmn_id,
    )


def task_by_id(workflow: Any, task_id: str | None) -> Any | None:
    """The task of ``workflow`` (or of its subprocesses) with this id, None if there is none."""
    if not task_id:
        return None
    try:
        return workflow.get_task_from_id(UUID(task_id))
    except (KeyError, ValueError, SpiffWorkflowException):
        return None
