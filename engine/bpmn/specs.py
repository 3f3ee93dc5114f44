"""Task spec classes of our own, plugged into SpiffWorkflow's parser.

SpiffWorkflow's default service task does nothing and parks. Ours parks on purpose: the runtime
(not the library) calls the handler, so it can apply a behaviour (sync, async-on-error, external)
around the call and decide what is committed.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.control import BpmnStartTask
from SpiffWorkflow.bpmn.specs.defaults import BoundaryEvent as _SpiffBoundaryEvent
from SpiffWorkflow.bpmn.specs.defaults import ParallelMultiInstanceTask as _SpiffParallelMI
from SpiffWorkflow.bpmn.specs.defaults import SequentialMultiInstanceTask as _SpiffSequentialMI
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask as _SpiffServiceTask
from SpiffWorkflow.bpmn.specs.defaults import StartEvent as _SpiffStartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.util.task import TaskState


class ServiceTask(_SpiffServiceTask):  # type: ignore[misc]
    """A service-like task (service, send or business-rule task with a handler or topic).

    ``extensions`` holds the activity configuration read from the BPMN attributes.
    """

    def _run_hook(self, my_task: Any) -> None:
        # None leaves the task STARTED: a wait state the runtime resolves.
        return None


def activity_config(task_spec: Any) -> dict[str, Any]:
    """The configuration dict the parser stored on a spec (empty for foreign specs)."""
    ext = getattr(task_spec, "extensions", None)
    return ext if isinstance(ext, dict) else {}


def implementation_handler(config: dict[str, Any], activity_id: str) -> str | None:
    """The handler a service-like task calls: the one its attributes name or, when it has no
    implementation attribute at all (bpmn.io cannot set one), the one registered under its
    element id. None when an expression, a delegate expression or a topic implements it."""
    name = config.get("handler")
    if name:
        return str(name)
    if config.get("expression") or config.get("delegate_expression") or config.get("external"):
        return None
    return activity_id


#: internal_data key on an event subprocess task once its start event has fired.
TRIGGERED = "spillway_triggered"
#: Attribute of the top workflow object: interrupting event subprocesses started in this call
#: whose scope is still to be cancelled (``apply_interrupts``). Never stored.
_PENDING = "_spillway_interrupts"


def is_event_subprocess(task: Any) -> bool:
    # SpiffWorkflow starts event subprocesses (of every trigger kind) from its hidden start
    # task, where an ordinary flow has the start event.
    return (
        isinstance(task.task_spec, SubWorkflowTask)
        and task.parent is not None
        and isinstance(task.parent.task_spec, BpmnStartTask)
    )


def is_event_subprocess_spec(task_spec: Any) -> bool:
    """The element is an event subprocess (what ``is_event_subprocess`` reads of a task)."""
    return isinstance(task_spec, SubWorkflowTask) and any(
        isinstance(i, BpmnStartTask) for i in task_spec.inputs
    )


class StartEvent(_SpiffStartEvent):  # type: ignore[misc]
    """A start event; in an event subprocess, catching its event starts the subprocess and,
    when it is interrupting (BPMN's default), the rest of the enclosing scope is cancelled.

    SpiffWorkflow runs every event subprocess as non-interrupting. Every catch passes here (an
    error end event's throw inside SpiffWorkflow, a handler's BpmnError, a message, a timer),
    so none lets the interrupted flow go on. The cancelling waits for ``apply_interrupts``: a
    throw from inside the scope is still completing its own task when the event is caught.
    """

    def catch(self, my_task: Any, event: Any) -> None:
        super().catch(my_task, event)
        workflow = my_task.workflow
        parent_id = getattr(workflow, "parent_task_id", None)
        if parent_id is None:
            return
        top = workflow.top_workflow
        esp = top.get_task_from_id(parent_id)
        if esp is None or not is_event_subprocess(esp):
            return
        esp.internal_data[TRIGGERED] = True
        if activity_config(self).get("interrupting", True):
            top.__dict__.setdefault(_PENDING, []).append(esp)


def apply_interrupts(top_workflow: Any) -> None:
    """Cancel the scopes of the interrupting event subprocesses started since the last call."""
    pending = top_workflow.__dict__.pop(_PENDING, None)
    for esp in pending or ():
        for sibling in list(esp.parent.children):
            if sibling is not esp:
                sibling.cancel()


class _LocalElementVariable:
    """An instance's element variable (``inputDataItem``, Camunda's ``elementVariable``) stays
    its own: SpiffWorkflow merges every finished instance's data, element variable included,
    into the activity, so the next sequential instance found it "already exists" and the last
    element outlived the loop as a process variable."""

    data_output: Any
    input_item: Any

    def merge_child(self, workflow: Any, child: Any) -> None:
        if self.data_output is not None or self.input_item is None:
            super().merge_child(workflow, child)  # type: ignore[misc]
            return
        # Out of the child's data only while SpiffWorkflow merges it (and decides, in its
        # subclasses, whether the activity is done).
        key = self.input_item.bpmn_id
        missing = object()
        item = child.data.pop(key, missing)
        try:
            super().merge_child(workflow, child)  # type: ignore[misc]
        finally:
            if item is not missing:
                child.data[key] = item


class SequentialMultiInstance(_LocalElementVariable, _SpiffSequentialMI):  # type: ignore[misc]
    pass


class ParallelMultiInstance(_LocalElementVariable, _SpiffParallelMI):  # type: ignore[misc]
    pass


class BoundaryEvent(_SpiffBoundaryEvent):  # type: ignore[misc]
    """A boundary event; a non-interrupting one with a message or signal takes every such
    event while its activity runs, as in Camunda (SpiffWorkflow's takes one).

    Every delivery passes through ``catch`` (a correlated message, a broadcast signal, a
    signal thrown in the instance), so the fresh event waiting beside the one that fired is
    made here. It joins the event manager at once: SpiffWorkflow chose the catchers of the
    current event before calling ``catch``, so it does not take this one too. Repeating
    timers do the same in ``engine.bpmn.timer_events``.
    """

    def catch(self, my_task: Any, event: Any) -> None:
        if not self.cancel_activity and isinstance(
            self.event_definition, MessageEventDefinition | SignalEventDefinition
        ):
            sibling = my_task.parent._add_child(self, TaskState.WAITING)
            self._predict(sibling, mask=TaskState.NOT_FINISHED_MASK)
            my_task.workflow.top_workflow.event_manager.add_task(sibling)
        super().catch(my_task, event)
