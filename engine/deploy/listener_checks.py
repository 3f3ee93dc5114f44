"""What deploy refuses about execution and task listeners (they run: ``engine.bpmn.listeners``)."""

from __future__ import annotations

from lxml import etree

from engine.bpmn import listeners
from engine.bpmn.script_bindings import PYTHON_FORMATS
from engine.deploy.normalize import local_name
from engine.expressions import javascript
from engine.expressions import juel as expressions

#: Elements that have a start and an end (flow nodes and processes), and sequence flows.
_FLOW = "sequenceFlow"


def listener_problem(node: etree._Element, owner: etree._Element) -> str | None:
    """Why the listener element ``node`` on ``owner`` cannot run, or None."""
    record = listeners.read_listener(node)
    source = record["source"]
    event = record["event"]
    owner_kind = local_name(owner)
    if etree.QName(node).localname == "taskListener":
        events = tuple(listeners.ZEEBE_TASK_EVENTS) if source.startswith("zeebe") else None
        if owner_kind != "userTask":
            return f"a {source} belongs on a user task, not on a {owner_kind}"
        if event == "timeout":
            return (
                f"{source} event 'timeout' (a task timer) is not supported; draw a "
                "non-interrupting timer boundary event on the user task instead"
            )
        valid = events or listeners.TASK_EVENTS
        if event not in valid:
            return f"{source} event '{event}' is not one of {', '.join(valid)}"
    else:
        valid = ("take",) if owner_kind == _FLOW else ("start", "end")
        if event not in valid:
            hint = "a sequence flow's listener fires on 'take'" if owner_kind == _FLOW else ""
            return (
                f"{source} event '{event}' cannot fire on a {owner_kind} (it fires on "
                f"{' or '.join(valid)}){'; ' + hint if hint else ''}"
            )
    kind, value = record["kind"], str(record.get("value") or "")
    if kind == "none":
        return f"{source} has none of class, delegateExpression, expression or a script"
    if kind == "type" and not value:
        return f"{source} has no type (the handler to call)"
    if kind == "type" and value.startswith("="):
        return f"{source} type '{value}' is an expression; name the handler"
    if kind in ("expression", "delegate"):
        try:
            expressions.compile_expression(value)
        except Exception as exc:  # noqa: BLE001 - the parse error is the reason
            return f"{source} {kind} '{value}' does not parse: {exc}"
    if kind == "script":
        fmt = str(record.get("format") or "")
        if record.get("resource"):
            return (
                f"{source} runs a script from resource '{record['resource']}': Spillway runs "
                "only scripts written in the model (no file access); copy the script inline"
            )
        if not (javascript.is_javascript(fmt) or fmt in PYTHON_FORMATS):
            return (
                f"{source} script in {fmt or 'an unnamed language'} cannot run: Spillway runs "
                "inline JavaScript and, with allow_scripts=True, Python"
            )
    return None
