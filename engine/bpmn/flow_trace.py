"""Which flow nodes and sequence flows an instance's tokens passed, read off its task tree.

SpiffWorkflow keeps every task an instance created (loop passes, cancelled branches and finished
subprocesses included), each child made by the task its token came from. So a visible task that
a token reached, together with its nearest visible ancestor, names one sequence flow taken: the
flow from that ancestor's element to the task's element. What the tree says, case by case:

- predicted tasks (MAYBE, LIKELY, FUTURE) were never reached; the branches a gateway did not
  choose are dropped from the tree, and the events after an event-based gateway stay predicted
  until one of them fires;
- a task is reached when its parent completed: the arrivals at a parallel or inclusive join that
  did not go on are CANCELLED children of their branch's last task (each is one incoming flow
  taken), an activity a boundary event interrupted is CANCELLED too;
- a boundary event, and an event subprocess, counts only when it fired (COMPLETED), not while it
  listens.

A pair (source, target) that is no sequence flow of the model (a boundary event's "parent" is
the task before its activity; a multi-instance body is the parent of its instances) is simply not
found among the model's flows by whoever maps pairs to flow ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import CallActivity
from SpiffWorkflow.util.task import TaskState

from engine.bpmn.call_mappings import MappedCallActivity
from engine.bpmn.specs import TRIGGERED, is_event_subprocess
from engine.bpmn.task_tree import is_visible

_PREDICTED = TaskState.MAYBE | TaskState.LIKELY | TaskState.FUTURE


@dataclass
class ProcessTrace:
    """What the tokens of one process (the instance's own, or one it called) passed."""

    process_id: str
    nodes: set[str] = field(default_factory=set)
    edges: set[tuple[str, str]] = field(default_factory=set)  # (source id, target id)


def trace(workflow: Any) -> dict[str, ProcessTrace]:
    """The nodes and (source, target) pairs taken, by process id: the top process, and every
    process a call activity started (an embedded subprocess belongs to the process it is in)."""
    traces: dict[str, ProcessTrace] = {}
    owners: dict[int, str] = {id(workflow): str(workflow.spec.name)}
    # Parents before children: a subprocess's owner is known once its parent workflow's is.
    pending = sorted(workflow.subprocesses.values(), key=lambda w: w.depth)
    for sub in pending:
        parent_task = workflow.get_task_from_id(sub.parent_task_id)
        if _calls_a_process(parent_task.task_spec, sub.spec):
            owners[id(sub)] = str(sub.spec.name)
        else:
            owners[id(sub)] = owners.get(id(parent_task.workflow), str(workflow.spec.name))
    for flow in [workflow, *pending]:
        owner = owners[id(flow)]
        _visit(flow, traces.setdefault(owner, ProcessTrace(owner)))
    return traces


def _calls_a_process(spec: Any, sub_spec: Any) -> bool:
    """A call activity's subworkflow runs another process; an embedded subprocess's (which
    SpiffWorkflow names after the element, and Spillway's SubProcess spec also derives from
    CallActivity) belongs to the process around it."""
    if isinstance(spec, MappedCallActivity):
        return True
    return isinstance(spec, CallActivity) and sub_spec.name != spec.bpmn_id


def _visit(flow: Any, into: ProcessTrace) -> None:
    for task in flow.tasks.values():
        if not is_visible(task) or not _reached(task):
            continue
        into.nodes.add(task.task_spec.bpmn_id)
        source = task.parent
        while source is not None and not is_visible(source):
            source = source.parent
        if source is not None:
            into.edges.add((source.task_spec.bpmn_id, task.task_spec.bpmn_id))


def _reached(task: Any) -> bool:
    if task.state & _PREDICTED:
        return False
    if isinstance(task.task_spec, BoundaryEvent) or is_event_subprocess(task):
        return task.state == TaskState.COMPLETED or TRIGGERED in task.internal_data
    parent = task.parent
    return parent is None or parent.state == TaskState.COMPLETED
