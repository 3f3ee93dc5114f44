"""Compensation at run time: which completed activities a throw event undoes, in what order.

``deploy.compensation_model`` has rewritten each compensation throw event into a dispatch loop
(a ``Dispatch`` gateway in front of the event, with a copy of every handler the event may run).
Here:

- Every completion of a compensable activity is recorded, in completion order, in the
  ``internal_data`` of the instance's root task, which SpiffWorkflow serializes with the
  instance: the activity, its handler, the task and the embedded subprocesses it ran in.
- When a token reaches a dispatch gateway from outside its loop, the gateway takes the records
  its throw event compensates (see ``_eligible``) out of that list, newest first, and keeps the
  queue in its own ``internal_data``. Each pass through the gateway takes the next handler; an
  empty queue leaves by the default flow to the throw event.

Handlers are ordinary tasks of the flow, so service-task behaviours, retries, incidents,
external tasks and user tasks work in them as anywhere else.
"""

from __future__ import annotations

import json
from typing import Any

from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser
from SpiffWorkflow.bpmn.specs.defaults import ExclusiveGateway
from SpiffWorkflow.util.task import TaskState

from engine.bpmn.namespaces import COMPENSATION_DISPATCH
from engine.bpmn.specs import is_event_subprocess
from engine.bpmn.task_tree import task_by_id
from engine.core.errors import EngineError

#: ``internal_data`` key of the root task: completions not compensated yet, oldest first.
RECORDS = "spillway_compensable"
#: ``internal_data`` key of a dispatch task: the handler it chose and those still to run.
STEP = "spillway_compensation"
#: Spec attribute of a compensable activity: the id of its handler.
HANDLER = "spillway_compensation_handler"
#: Spec attribute of a handler that stands for a compensation event subprocess.
EVENT_HANDLER = "spillway_compensation_event_handler"
__all__ = ["Dispatch", "ExclusiveGateway", "attach", "exclusive_gateway_parser"]

#: ``extensions`` key of a dispatch gateway's configuration.
CONFIG = "compensation_dispatch"


class Dispatch(ExclusiveGateway):  # type: ignore[misc]
    """The gateway of a compensation throw event's loop: it runs the next handler, or leaves
    to the throw event when none is left."""

    def _run_hook(self, my_task: Any) -> bool:
        chosen = next_handler(my_task)
        name = chosen if chosen is not None else self.default_task_spec
        output = my_task.workflow.spec.get_task_spec_from_name(name)
        my_task._sync_children([output], TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True


class DispatchParser(ConditionalGatewayParser):  # type: ignore[misc]
    def parse_extensions(self, node: Any = None) -> dict[str, Any]:
        return {CONFIG: json.loads(str(self.node.get(COMPENSATION_DISPATCH)))}


def exclusive_gateway_parser(
    process_parser: Any, spec_class: Any, node: Any, nsmap: Any, lane: Any = None
) -> Any:
    """SpiffWorkflow's exclusive gateway parser, or ours for a compensation dispatch gateway."""
    if node.get(COMPENSATION_DISPATCH) is not None:
        return DispatchParser(process_parser, Dispatch, node, nsmap, lane=lane)
    return ConditionalGatewayParser(process_parser, spec_class, node, nsmap, lane=lane)


# -- wiring specs up once per parsed model ---------------------------------------------------


def attach(task_specs: Any, metas: dict[str, dict[str, Any]]) -> None:
    """Apply each document's compensation metadata (by file name) to its parsed specs."""
    for ts in task_specs:
        meta = metas.get(str(getattr(getattr(ts, "_wf_spec", None), "file", "")))
        if not meta:
            continue
        name = ts.name
        if name in meta["originals"]:
            ts.bpmn_id = meta["originals"][name]
        if isinstance(ts, Dispatch):
            ts.bpmn_id = None  # engine structure, not a BPMN element: no history row
        if name in meta["event_handlers"]:
            setattr(ts, EVENT_HANDLER, True)
        if name in meta["activities"]:
            setattr(ts, HANDLER, meta["activities"][name])
            if not ts.completed_event.is_connected(_record):
                ts.completed_event.connect(_record)


def _record(workflow: Any, task: Any) -> None:
    handler = getattr(task.task_spec, HANDLER, None)
    if handler is None:
        return
    root = workflow.top_workflow.task_tree
    root.internal_data.setdefault(RECORDS, []).append(
        {
            "activity": task.task_spec.bpmn_id,
            "handler": handler,
            "path": scope_path(task.workflow),
            "task": str(task.id),
        }
    )


# -- dispatch --------------------------------------------------------------------------------


def scope_path(workflow: Any) -> list[str]:
    """Ids of the subprocess tasks from the top workflow down to ``workflow``."""
    path: list[str] = []
    while workflow.parent_task_id is not None:
        path.insert(0, str(workflow.parent_task_id))
        workflow = workflow.parent_workflow
    return path


def next_handler(task: Any) -> str | None:
    """The spec name of the handler copy to run next from this dispatch task, or None."""
    config: dict[str, Any] = task.task_spec.extensions[CONFIG]
    previous = _previous_pass(task)
    if previous is not None:
        queue = list(previous.internal_data[STEP]["queue"])
    else:
        queue = _collect(task, config)
    item = queue.pop(0) if queue else None
    task.internal_data[STEP] = {"chosen": item, "queue": queue}
    return str(item["handler"]) if item is not None else None


def _previous_pass(task: Any) -> Any | None:
    """The same gateway's earlier pass when the token comes back from one of its handlers."""
    current = task.parent
    while current is not None:
        if current.task_spec is task.task_spec:
            step = current.internal_data.get(STEP) or {}
            return current if step.get("chosen") is not None else None
        current = current.parent
    return None


def _is_call_activity(task_spec: Any) -> bool:
    # SpiffWorkflow's Camunda parser gives embedded subprocesses the CallActivity class too;
    # an embedded subprocess runs the spec named by its own id, a call activity another process.
    return bool(getattr(task_spec, "spec", task_spec.name) != task_spec.name)


def _throw_scope(task: Any) -> list[str]:
    """The scope a throw compensates: its process or subprocess; the enclosing scope for a
    throw inside an event subprocess; inside the handler of a compensation event subprocess,
    the subprocess instance being compensated."""
    workflow = task.workflow
    top = workflow.top_workflow
    if workflow is top:
        return []
    owner = task_by_id(top, str(workflow.parent_task_id))
    if owner is None:
        return scope_path(workflow)
    if getattr(owner.task_spec, EVENT_HANDLER, False) and owner.parent is not None:
        chosen = (owner.parent.internal_data.get(STEP) or {}).get("chosen") or {}
        if "scope" in chosen:
            return list(chosen["scope"])
    if is_event_subprocess(owner):
        return scope_path(owner.workflow)
    return scope_path(workflow)


def _eligible(top: Any, record: dict[str, Any], scope: list[str], ref: str | None) -> bool:
    """Completed in ``scope``, or in embedded subprocesses of it that completed and have no
    handler of their own (those are compensated as a whole); with ``activityRef``, only that
    activity (or what completed inside that subprocess)."""
    path = list(record["path"])
    if path[: len(scope)] != scope:
        return False
    inner = path[len(scope) :]
    for task_id in inner:
        sub = task_by_id(top, task_id)
        if (
            sub is None
            or sub.state != TaskState.COMPLETED
            or _is_call_activity(sub.task_spec)
            or getattr(sub.task_spec, HANDLER, None) is not None
        ):
            return False
    if ref is None:
        return True
    if not inner:
        return bool(record["activity"] == ref)
    first = task_by_id(top, inner[0])
    return first is not None and first.task_spec.bpmn_id == ref


def _collect(task: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    top = task.workflow.top_workflow
    root = top.task_tree
    records: list[dict[str, Any]] = root.internal_data.get(RECORDS, [])
    scope = _throw_scope(task)
    ref = config.get("activity_ref")
    taken = [r for r in records if _eligible(top, r, scope, ref)]
    if not taken:
        return []
    # Each completion is compensated once (Camunda removes its subscription).
    root.internal_data[RECORDS] = [r for r in records if r not in taken]
    items = []
    for record in reversed(taken):
        copy = config["handlers"].get(record["handler"])
        if copy is None:
            raise EngineError(
                f"compensation throw event '{config['throw']}' cannot run handler "
                f"'{record['handler']}' of activity '{record['activity']}'"
            )
        items.append(
            {
                "handler": copy,
                "activity": record["activity"],
                "scope": [*record["path"], record["task"]],
            }
        )
    return items
