"""Execution and task listeners: what they are on a model, and when they fire.

Camunda 7 writes ``camunda:executionListener`` (events ``start``, ``end``, ``take``) and
``camunda:taskListener`` (``create``, ``assignment``, ``complete``, ``delete``); Camunda 8 writes
``zeebe:executionListeners``/``zeebe:taskListeners`` with a job ``type``. Each listener becomes a
JSON-able record (``read``), kept on the task spec it belongs to (``attach``), and fires from the
spec's lifecycle events in Camunda's order:

- an activity's input mappings, then its ``start`` listeners, then its work (a user task's
  ``create`` then ``assignment`` listeners when it is created with an assignee), then its output
  mappings, its ``complete`` task listeners and its ``end`` listeners;
- a sequence flow's ``take`` listeners between the source's ``end`` and the target's ``start``;
- a process's ``start`` listeners before its first element, its ``end`` listeners after its last;
- a user task cancelled (an interrupting boundary event, an ended scope) fires its ``delete``
  task listeners, then its ``end`` execution listeners.

Service-like tasks fire their ``start`` and ``end`` listeners from the runtime's activation, so a
listener failure there is the task's technical failure (retried under async on error). What a
listener does (call a handler, evaluate an expression, run a script) is the job of the
*listener host* the runtime binds on the workflow (``bind_host``); this module only knows when.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from lxml import etree

from engine.bpmn import mappings
from engine.bpmn.namespaces import ACTIVITI_NS, BPMN_NS, CAMUNDA_NS, FLOWABLE_NS

ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"

EXECUTION_EVENTS = ("start", "end", "take")
TASK_EVENTS = ("create", "assignment", "complete", "delete")
#: Camunda 8 task listener event types, and the Camunda 7 event each fires at.
ZEEBE_TASK_EVENTS = {
    "creating": "create",
    "create": "create",
    "assigning": "assignment",
    "assignment": "assignment",
    "completing": "complete",
    "complete": "complete",
    "canceling": "delete",
    "cancel": "delete",
}

#: Attribute on task specs and workflow specs holding the parsed listeners.
SPEC_ATTR = "spillway_listeners"
#: internal_data key: the task's start listeners fired (its end or delete listeners may fire).
STARTED = "spillway_listened"
#: Attribute of the top workflow object holding the run's listener host. Never stored.
HOST_ATTR = "_spillway_listener_host"

Listener = dict[str, Any]


class ListenerHost(Protocol):
    """What the runtime provides: run one listener for ``task`` and return what it sets."""

    def call(self, task: Any, listener: Listener, event: str, activity_id: str) -> dict[str, Any]:
        """Run ``listener`` (fired by ``event``) for ``task``; ``activity_id`` is the element
        the listener belongs to (the flow of a take listener, the process of a process
        listener). Raises on failure."""
        ...


def bind_host(workflow: Any, host: ListenerHost | None) -> None:
    workflow.__dict__[HOST_ATTR] = host


def _host(task: Any) -> ListenerHost | None:
    host = task.workflow.top_workflow.__dict__.get(HOST_ATTR)
    return host  # type: ignore[no-any-return]


# -- reading ------------------------------------------------------------------------------------


def _ns(node: etree._Element) -> str:
    return etree.QName(node).namespace or ""


def _fields(node: etree._Element) -> list[list[str]]:
    """``camunda:field`` children: [name, kind ("string" or "expression"), text]."""
    out = []
    for child in node:
        if not isinstance(child.tag, str) or etree.QName(child).localname != "field":
            continue
        name = str(child.get("name") or "")
        if child.get("stringValue") is not None:
            out.append([name, "string", str(child.get("stringValue"))])
        elif child.get("expression") is not None:
            out.append([name, "expression", str(child.get("expression"))])
        else:
            for sub in child:
                if isinstance(sub.tag, str):
                    kind = "expression" if etree.QName(sub).localname == "expression" else "string"
                    out.append([name, kind, (sub.text or "").strip()])
                    break
            else:
                out.append([name, "string", ""])
    return out


def read_listener(node: etree._Element) -> Listener:
    """One listener element as a record: ``event``, ``kind`` (``class``, ``delegate``,
    ``expression``, ``script``, ``type``), ``value``, ``format`` and ``fields``; ``source``
    names the element as written (``camunda:executionListener``)."""
    ns = _ns(node)
    local = etree.QName(node).localname
    prefix = {ZEEBE_NS: "zeebe", ACTIVITI_NS: "activiti", FLOWABLE_NS: "flowable"}.get(
        ns, "camunda"
    )
    record: Listener = {"source": f"{prefix}:{local}", "fields": _fields(node)}
    if ns == ZEEBE_NS:
        event = (node.get("eventType") or "").strip()
        record["event"] = event
        record["kind"] = "type"
        record["value"] = (node.get("type") or "").strip()
        record["retries"] = (node.get("retries") or "").strip() or None
        return record
    record["event"] = (node.get("event") or "").strip()
    for attribute, kind in (("class", "class"), ("delegateExpression", "delegate")):
        value = (node.get(attribute) or "").strip()
        if value:
            record["kind"], record["value"] = kind, value
            return record
    expression = (node.get("expression") or "").strip()
    if expression:
        record["kind"], record["value"] = "expression", expression
        return record
    for child in node:
        if isinstance(child.tag, str) and etree.QName(child).localname == "script":
            record["kind"] = "script"
            record["value"] = child.text or ""
            record["format"] = (child.get("scriptFormat") or "").strip().lower()
            record["resource"] = (child.get("resource") or "").strip() or None
            return record
    record["kind"], record["value"] = "none", ""
    return record


def _extension_children(node: etree._Element) -> Iterable[etree._Element]:
    for ext in node:
        if isinstance(ext.tag, str) and ext.tag == f"{{{BPMN_NS}}}extensionElements":
            yield from (c for c in ext if isinstance(c.tag, str))


def listener_elements(node: etree._Element) -> list[etree._Element]:
    """The listener elements directly on ``node`` (a flow node, a flow or a process)."""
    found = []
    for child in _extension_children(node):
        local = etree.QName(child).localname
        if local in ("executionListener", "taskListener") and _ns(child) == CAMUNDA_NS:
            found.append(child)
        elif _ns(child) == ZEEBE_NS and local in ("executionListeners", "taskListeners"):
            found.extend(c for c in child if isinstance(c.tag, str))
    return found


def read(node: etree._Element) -> dict[str, dict[str, list[Listener]]]:
    """``{"execution": {event: [...]}, "task": {event: [...]}}`` for one element."""
    out: dict[str, dict[str, list[Listener]]] = {"execution": {}, "task": {}}
    for element in listener_elements(node):
        record = read_listener(element)
        local = etree.QName(element).localname
        if local == "taskListener":
            event = str(record["event"])
            event = ZEEBE_TASK_EVENTS.get(event, event) if _ns(element) == ZEEBE_NS else event
            out["task"].setdefault(event, []).append(record)
        else:
            out["execution"].setdefault(str(record["event"]), []).append(record)
    return out


# -- firing -------------------------------------------------------------------------------------


def listeners_of(spec: Any) -> dict[str, Any]:
    found = getattr(spec, SPEC_ATTR, None)
    return found if isinstance(found, dict) else {}


def _run_all(task: Any, records: list[Listener], event: str, activity_id: str) -> dict[str, Any]:
    host = _host(task)
    if host is None or not records:
        return {}
    updates: dict[str, Any] = {}
    for record in records:
        result = host.call(task, record, event, activity_id)
        if result:
            mappings.set_values(task, result)  # a later listener sees what an earlier set
            updates.update(result)
    return updates


def fire(task: Any, group: str, event: str) -> dict[str, Any]:
    """Fire ``task``'s listeners of ``group`` (``execution`` or ``task``) for ``event``; their
    variables are set on the task (locals stay local) and returned."""
    records = listeners_of(task.task_spec).get(group, {}).get(event, [])
    return _run_all(task, list(records), event, str(task.task_spec.bpmn_id))


def fire_take(task: Any) -> None:
    """The take listeners of the flow that brought the token to ``task``."""
    takes = listeners_of(task.task_spec).get("take") or {}
    if not takes:
        return
    parent = task.parent
    while parent is not None:
        source = getattr(parent.task_spec, "bpmn_id", None)
        if source in takes:
            for flow_id, records in takes[source]:
                _run_all(task, list(records), "take", str(flow_id))
            return
        if source is not None and type(parent.task_spec).__name__ != "_BoundaryEventParent":
            return
        parent = parent.parent


def _is_service(spec: Any) -> bool:
    from engine.bpmn.specs import ServiceTask

    return isinstance(spec, ServiceTask)


def _is_boundary(spec: Any) -> bool:
    from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent

    return isinstance(spec, BoundaryEvent)


def _on_update(workflow: Any, task: Any) -> None:
    if task.internal_data.get(STARTED) or _is_boundary(task.task_spec):
        return  # a boundary event starts when its event comes (``_on_complete``)
    task.internal_data[STARTED] = True
    fire_take(task)
    if _is_service(task.task_spec):
        return  # start listeners fire in the runtime's activation
    fire(task, "execution", "start")
    if listeners_of(task.task_spec).get("user_task"):
        fire(task, "task", "create")
        if listeners_of(task.task_spec).get("assignee"):
            fire(task, "task", "assignment")


def _on_complete(workflow: Any, task: Any) -> None:
    if _is_service(task.task_spec):
        return
    if _is_boundary(task.task_spec):
        fire(task, "execution", "start")
    fire(task, "task", "complete")
    fire(task, "execution", "end")


def _on_cancel(workflow: Any, task: Any) -> None:
    if not task.internal_data.get(STARTED):
        return  # never reached: a predicted branch that was dropped
    fire(task, "task", "delete")
    fire(task, "execution", "end")


def _on_process_start(workflow: Any, task: Any) -> None:
    records = getattr(task.workflow.spec, SPEC_ATTR, {}).get("start", [])
    _run_all(task, list(records), "start", str(task.workflow.spec.name))


def _on_process_end(workflow: Any, task: Any) -> None:
    records = getattr(task.workflow.spec, SPEC_ATTR, {}).get("end", [])
    _run_all(task, list(records), "end", str(task.workflow.spec.name))


def _connect(event: Any, callback: Any) -> None:
    if not event.is_connected(callback):
        event.connect(callback)


def attach(
    workflow_specs: Iterable[Any],
    nodes: Mapping[tuple[str, str], etree._Element],
    process_nodes: Mapping[str, etree._Element],
) -> None:
    """Read the listeners of every element of ``workflow_specs`` and hook their firing.
    ``nodes`` maps (file, element id) to elements, ``process_nodes`` process ids to the
    ``bpmn:process`` elements."""
    from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask

    for wf_spec in workflow_specs:
        file = str(getattr(wf_spec, "file", ""))
        process = process_nodes.get(str(wf_spec.name))
        if process is not None:
            found = read(process)["execution"]
            if found.get("start") or found.get("end"):
                setattr(wf_spec, SPEC_ATTR, found)
                start, end = wf_spec.task_specs.get("Start"), wf_spec.task_specs.get("End")
                if start is not None and found.get("start"):
                    _connect(start.completed_event, _on_process_start)
                if end is not None and found.get("end"):
                    _connect(end.completed_event, _on_process_end)
        takes = _takes(file, nodes, wf_spec)
        for ts in wf_spec.task_specs.values():
            bpmn_id = getattr(ts, "bpmn_id", None)
            if bpmn_id is None:
                continue
            node = nodes.get((file, str(bpmn_id)))
            record: dict[str, Any] = {}
            if not isinstance(ts, LoopTask) and node is not None:
                own = read(node)
                if any(own["execution"].values()) or any(own["task"].values()):
                    record.update(own)
                    record["user_task"] = etree.QName(node).localname == "userTask"
                    record["assignee"] = bool((node.get(f"{{{CAMUNDA_NS}}}assignee") or "").strip())
            if bpmn_id in takes and not _is_mi_child(ts, wf_spec):
                record["take"] = takes[bpmn_id]
            if not record:
                continue
            setattr(ts, SPEC_ATTR, record)
            _connect(ts.update_event, _on_update)
            _connect(ts.completed_event, _on_complete)
            _connect(ts.cancelled_event, _on_cancel)
            _emit_cancel(ts)


def _emit_cancel(ts: Any) -> None:
    """Subprocesses and catching events override ``_on_cancel`` without emitting
    ``cancelled_event``; emit it after theirs (once per spec)."""
    from SpiffWorkflow.specs.base import TaskSpec

    if "_on_cancel" in ts.__dict__ or type(ts)._on_cancel is TaskSpec._on_cancel:
        return
    original = type(ts)._on_cancel

    def on_cancel(my_task: Any) -> None:
        original(ts, my_task)
        ts.cancelled_event.emit(my_task.workflow, my_task)

    ts._on_cancel = on_cancel


def _is_mi_child(ts: Any, wf_spec: Any) -> bool:
    """The inner spec of a multi-instance activity (the loop task holds the incoming flow)."""
    from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask

    return any(
        isinstance(other, LoopTask) and other.task_spec == ts.name
        for other in wf_spec.task_specs.values()
    )


def _takes(
    file: str, nodes: Mapping[tuple[str, str], etree._Element], wf_spec: Any
) -> dict[str, dict[str, list[Any]]]:
    """target element id -> {source element id: [[flow id, listeners], ...]}."""
    out: dict[str, dict[str, list[Any]]] = {}
    ids = {getattr(ts, "bpmn_id", None) for ts in wf_spec.task_specs.values()}
    for (node_file, _), node in nodes.items():
        if node_file != file or node.tag != f"{{{BPMN_NS}}}sequenceFlow":
            continue
        target, source = node.get("targetRef"), node.get("sourceRef")
        if target not in ids or source not in ids:
            continue
        records = read(node)["execution"].get("take", [])
        if records:
            by_source = out.setdefault(str(target), {})
            by_source.setdefault(str(source), []).append([str(node.get("id")), records])
    return out
