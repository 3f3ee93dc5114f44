"""Process instance modification: ``modify(instance_id, start_before=[...], cancel=[...])``.

``cancel`` ends every token at an activity (history rows close as ``cancelled``, its jobs,
external tasks and user tasks go with them); ``start_before`` puts a new token in front of an
activity, as if a sequence flow had just arrived there, carrying the instance's variables.
Cancellations apply first, then the new tokens, then the instance runs on (a new token at a
service task calls its handler) -- all in memory, committed in one transaction, so a refusal
or a failure leaves the instance exactly as it was.

Refused, naming the activity: ids the model does not have; cancelling an activity where no
token is; activities inside a multi-instance body, or multi-instance activities themselves;
start events, boundary events, the start events of event subprocesses and converging
(parallel, inclusive) gateways; activities inside an embedded subprocess or called process
that has no active instance (start before the subprocess itself instead). If no token is left
afterwards, the instance ends as ``terminated``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit, _EndJoin
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.bpmn.specs.mixins.parallel_gateway import ParallelGateway
from SpiffWorkflow.util.task import TaskState

from engine.bpmn import instance_state
from engine.core.errors import EngineError, InvalidOperation
from engine.core.values import ProcessInstance
from engine.runtime.operations import Host, command
from engine.runtime.run import Run


def _ids(value: Sequence[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise EngineError(f"modify: {what} expects a list of activity ids, got {value!r}")
    if not all(isinstance(v, str) and v for v in value):
        raise EngineError(f"modify: {what} holds an id that is not a non-empty string: {value!r}")
    return list(dict.fromkeys(value))


def _specs_by_id(run: Run) -> dict[str, list[tuple[Any, Any]]]:
    """BPMN id -> [(task spec, the workflow spec holding it)] over the model."""
    found: dict[str, list[tuple[Any, Any]]] = {}
    for wf_spec in (run.model.spec, *run.model.subprocess_specs.values()):
        for ts in wf_spec.task_specs.values():
            bpmn_id = getattr(ts, "bpmn_id", None)
            if bpmn_id:
                found.setdefault(bpmn_id, []).append((ts, wf_spec))
    return found


def _multi_instance_bodies(run: Run) -> set[str]:
    """Names of specs that are a multi-instance body (the child of a loop task)."""
    bodies = set()
    for wf_spec in (run.model.spec, *run.model.subprocess_specs.values()):
        for ts in wf_spec.task_specs.values():
            if isinstance(ts, LoopTask):
                bodies.add(ts.task_spec)
    return bodies


def _in_multi_instance(task: Any) -> Any | None:
    """The multi-instance activity around ``task`` (across subprocess boundaries), if any."""
    current = task
    while current is not None:
        parent = current.parent
        while parent is not None:
            if isinstance(parent.task_spec, LoopTask):
                return parent
            parent = parent.parent
        parent_id = current.workflow.parent_task_id
        current = current.workflow.top_workflow.get_task_from_id(parent_id) if parent_id else None
        if current is not None and isinstance(current.task_spec, LoopTask):
            return current
    return None


def _tokens(run: Run, activity_id: str) -> list[Any]:
    return [
        t
        for t in run.wf.get_tasks(state=TaskState.READY | TaskState.STARTED | TaskState.WAITING)
        if getattr(t.task_spec, "bpmn_id", None) == activity_id
        and not isinstance(t.task_spec, BoundaryEvent | BoundaryEventSplit | _EndJoin)
    ]


def _scope_of(run: Run, wf_spec: Any) -> Any | None:
    """The running (sub)workflow of ``wf_spec``: the instance itself, or an active subprocess."""
    if wf_spec is run.model.spec:
        return run.wf
    active = [
        sub for sub in run.wf.subprocesses.values() if sub.spec is wf_spec and not sub.completed
    ]
    return active[0] if len(active) == 1 else None


def _start_problem(run: Run, activity_id: str, bodies: set[str]) -> str | None:
    found = _specs_by_id(run).get(activity_id)
    if not found:
        return f"activity '{activity_id}' does not exist in process '{run.model.key}'"
    ts, wf_spec = found[0]
    if any(isinstance(s, LoopTask) or s.name in bodies for s, _ in found):
        return (
            f"activity '{activity_id}' is a multi-instance activity: Spillway cannot start "
            "before a multi-instance activity or inside its body"
        )
    if isinstance(ts, StartEvent):
        return f"activity '{activity_id}' is a start event; start before the activity after it"
    if isinstance(ts, BoundaryEvent):
        return f"activity '{activity_id}' is a boundary event; it fires with its activity"
    if isinstance(ts, ParallelGateway | InclusiveGateway):
        return (
            f"activity '{activity_id}' is a converging gateway; a new token there would "
            "never be joined; start before the activity after it"
        )
    scope = _scope_of(run, wf_spec)
    if scope is None:
        return (
            f"activity '{activity_id}' is inside subprocess '{wf_spec.name}', which has no "
            f"active instance (or several); start before '{wf_spec.name}' instead"
        )
    if scope is not run.wf:
        caller = run.wf.get_task_from_id(scope.parent_task_id)
        mi = _in_multi_instance(caller) if caller is not None else None
        if mi is not None or (caller is not None and caller.task_spec.name in bodies):
            return (
                f"activity '{activity_id}' is inside the multi-instance activity "
                f"'{(mi or caller).task_spec.bpmn_id}'; Spillway cannot modify its body"
            )
    return None


def _cancel_problem(run: Run, activity_id: str) -> str | None:
    if activity_id not in _specs_by_id(run):
        return f"activity '{activity_id}' does not exist in process '{run.model.key}'"
    tokens = _tokens(run, activity_id)
    if not tokens:
        return f"activity '{activity_id}' has no token to cancel in instance {run.instance_id}"
    for task in tokens:
        mi = _in_multi_instance(task)
        if mi is not None or isinstance(task.task_spec, LoopTask):
            return (
                f"activity '{activity_id}' is inside the multi-instance activity "
                f"'{(mi or task).task_spec.bpmn_id}'; cancel the whole multi-instance "
                "activity's scope instead"
            )
    return None


def modify(
    host: Host,
    instance_id: str,
    start_before: Sequence[str] | None = None,
    cancel: Sequence[str] | None = None,
) -> ProcessInstance:
    starts = _ids(start_before, "start_before")
    cancels = _ids(cancel, "cancel")
    if not starts and not cancels:
        raise EngineError("modify: give start_before and/or cancel activity ids")

    def action(run: Run) -> None:
        ended.clear()
        bodies = _multi_instance_bodies(run)
        problems = [p for a in cancels if (p := _cancel_problem(run, a))]
        problems += [p for a in starts if (p := _start_problem(run, a, bodies))]
        if problems:
            raise InvalidOperation(
                f"modify refused for instance {instance_id}: " + "; ".join(problems),
                problems=problems,
            )
        variables = copy.deepcopy((run.row or {}).get("variables") or {})
        for activity_id in cancels:
            for task in _tokens(run, activity_id):
                if not task.has_state(TaskState.FINISHED_MASK):
                    task.cancel()
        specs = _specs_by_id(run)
        for activity_id in starts:
            ts, wf_spec = specs[activity_id][0]
            scope = _scope_of(run, wf_spec)
            assert scope is not None  # checked above
            anchor = scope.task_tree
            token = anchor._add_child(ts, TaskState.READY)
            token.data = copy.deepcopy(variables)
            # Its path ahead, as SpiffWorkflow predicts a new workflow's.
            ts._predict(token, mask=TaskState.NOT_FINISHED_MASK)
        if not starts and not instance_state.open_tasks(run.wf):
            ended.append(True)  # the last tokens were cancelled: the instance ends
            return
        run.advance()

    ended: list[bool] = []

    def after(run: Run) -> None:
        if ended:
            run.write.instance.update(state="terminated", ended_at=run.now, waiting_at=[])
            run.write.purge = True

    return command(host, instance_id, action, after=after)
