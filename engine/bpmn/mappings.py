"""Camunda 7 input/output mappings of activities (``camunda:inputOutput``).

Input parameters are evaluated when the activity starts and become its *local* variables: the
activity (its handler, worker, script or output mappings) sees the process variables plus the
locals, and nothing after the activity sees the locals. Output parameters are evaluated when the
activity ends, over that same local view, and written to the process variables. A name the
activity sets (a handler's return value, a worker's or user's completion variables, a script's
assignment) that is an input parameter stays local, as Camunda's ``setVariable`` updates the
variable where it exists; every other name is a process variable.

Locals live in the task's ``internal_data`` under ``LOCALS`` (SpiffWorkflow serialises it with
the instance), never in ``task.data``, so they never flow on to the next task, into the
instance's variables or into history.

Service-like tasks (``engine.bpmn.specs.ServiceTask``) are mapped by the runtime's ``Activation``
(so a failing mapping is a technical failure with retries, like a failing handler). Every other
activity is mapped through SpiffWorkflow's spec events, hooked once per parsed model by
``attach``: inputs when the task is updated into its place (before it waits or runs), outputs
when it completes (before the next task copies its data).

``evaluate_value`` evaluates one parsed value (text or ``${...}``, ``camunda:list``,
``camunda:map``, inline Python or JavaScript ``camunda:script``); other mappings may reuse it.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree

from engine.bpmn import script_bindings
from engine.bpmn.namespaces import BPMN_NS, camunda
from engine.core.errors import ExpressionError
from engine.expressions import feel, javascript, juel

#: internal_data key of an activity's local variables (present from its start to its end).
LOCALS = "spillway_locals"
#: Spec attribute holding the parsed mapping: {"inputs": [[name, value]], "outputs": [...]}.
SPEC_ATTR = "spillway_io"
#: Script formats a mapping script may use (run only with ``allow_scripts=True``).

Value = dict[str, Any]


# -- parsing ----------------------------------------------------------------------------------


def parse_value(element: etree._Element) -> Value:
    """A JSON-able value tree from the content of a parameter or map entry element: its text
    (a constant or ``${...}``; empty is null) or its one child list, map or script."""
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        text = (element.text or "").strip()
        return {"kind": "text", "text": text} if text else {"kind": "null"}
    return _parse_item(children[0])


def _parse_item(item: etree._Element) -> Value:
    """A list item or the child of a parameter: a list, a map, a script, or any other element
    (``<camunda:value>``) whose content is the value."""
    if item.tag == camunda("list"):
        return {"kind": "list", "items": [_parse_item(c) for c in item if isinstance(c.tag, str)]}
    if item.tag == camunda("map"):
        entries = [
            [str(e.get("key") or ""), parse_value(e)]
            for e in item
            if isinstance(e.tag, str) and e.tag == camunda("entry")
        ]
        return {"kind": "map", "entries": entries}
    if item.tag == camunda("script"):
        return {
            "kind": "script",
            "format": (item.get("scriptFormat") or "").strip().lower(),
            "source": item.text or "",
            "resource": item.get("resource"),
        }
    return parse_value(item)


def io_element(node: etree._Element) -> etree._Element | None:
    """The activity's own ``camunda:inputOutput`` (not a connector's)."""
    for ext in node.findall(f"{{{BPMN_NS}}}extensionElements"):
        found = ext.find(camunda("inputOutput"))
        if found is not None:
            return found
    return None


def read_io(node: etree._Element) -> dict[str, Any] | None:
    """The activity's mapping, or None when it has none."""
    io = io_element(node)
    if io is None:
        return None
    inputs = [
        [str(p.get("name") or ""), parse_value(p)] for p in io.iter(camunda("inputParameter"))
    ]
    outputs = [
        [str(p.get("name") or ""), parse_value(p)] for p in io.iter(camunda("outputParameter"))
    ]
    if not inputs and not outputs:
        return None
    return {"inputs": inputs, "outputs": outputs}


def io_of(task_spec: Any) -> dict[str, Any] | None:
    io = getattr(task_spec, SPEC_ATTR, None)
    return io if isinstance(io, dict) else None


# -- evaluation -------------------------------------------------------------------------------


def evaluate_value(
    element: etree._Element | Value,
    variables: Mapping[str, Any],
    *,
    where: str,
    script_engine: Any = None,
) -> Any:
    """Evaluate a mapping value (an element such as ``camunda:inputParameter``, or its parsed
    form) against ``variables``. ``where`` names the element and parameter in errors. A script
    runs only through a script engine with ``allow_scripts=True``."""
    value = parse_value(element) if isinstance(element, etree._Element) else element
    kind = value["kind"]
    try:
        if kind == "null":
            return None
        if kind == "text":
            if str(value["text"]).startswith(feel.MARKER):  # Camunda 8's =expr
                return feel.evaluate(value["text"], variables, where)
            return juel.evaluate(value["text"], variables)
        if kind == "list":
            return [
                evaluate_value(v, variables, where=where, script_engine=script_engine)
                for v in value["items"]
            ]
        if kind == "map":
            out: dict[str, Any] = {}
            for key, item in value["entries"]:
                name = juel.evaluate(key, variables)
                out[str(name)] = evaluate_value(
                    item, variables, where=where, script_engine=script_engine
                )
            return out
        if kind == "script":
            return _run_script(value, variables, where, script_engine)
    except ExpressionError as exc:
        if str(exc).startswith(where):
            raise
        raise ExpressionError(f"{where}: {exc}") from exc
    raise ExpressionError(f"{where}: unknown value kind {kind!r}")


def _run_script(value: Value, variables: Mapping[str, Any], where: str, engine: Any) -> Any:
    if value["format"] in script_bindings.JUEL_FORMATS and not value.get("resource"):
        return juel.evaluate(str(value.get("source") or "").strip(), variables)
    if javascript.is_javascript(value["format"]) and not value.get("resource"):
        # JavaScript runs sandboxed, see engine.bpmn.script_bindings.
        return script_bindings.evaluate_mapping_script(value, variables, where, engine)
    if value.get("resource") or value["format"] not in script_bindings.PYTHON_FORMATS:
        # Deployment refuses these; kept for a clear message should one get here.
        raise ExpressionError(f"{where}: a {value['format'] or 'script'} script cannot run")
    if engine is None or not getattr(engine, "allow_scripts", False):
        raise ExpressionError(
            f"{where}: a Python script in a mapping cannot run: scripts are disabled (create "
            "the engine with allow_scripts=True to trust them)"
        )
    # Camunda's value of a script is its last statement's value.
    source = value["source"]
    try:
        tree = ast.parse(source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        context = copy.deepcopy(dict(variables))
        if tree.body:
            engine.environment.execute(ast.unparse(tree), context, {})
        if last is None:
            return None
        return engine.environment.evaluate(ast.unparse(last), context)
    except Exception as exc:  # any script error is the mapping's failure
        raise ExpressionError(f"{where}: script failed: {type(exc).__name__}: {exc}") from exc


def evaluate_expression_task(task: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """A ``camunda:expression`` service task: the variables its result sets (its
    ``camunda:resultVariable``, or none)."""
    expression = str(config["expression"])
    try:
        value = juel.evaluate(expression, view(task))
    except ExpressionError as exc:
        raise ExpressionError(f"{_element(task)}: camunda:expression {expression}: {exc}") from exc
    name = config.get("result_variable")
    return {str(name): value} if name else {}


def evaluate_name(task: Any, expression: str, attribute: str) -> str:
    """An expression that must give a name (a delegate expression's handler, a topic), evaluated
    over what the task sees; an ExpressionError naming the element otherwise."""
    where = f"{_element(task)}: {attribute} {expression}"
    try:
        if expression.startswith(feel.MARKER):  # Camunda 8: a FEEL job type
            value = feel.evaluate(expression, view(task), str(task.task_spec.bpmn_id))
        else:
            value = juel.evaluate(expression, view(task))
    except ExpressionError as exc:
        raise ExpressionError(f"{where}: {exc}") from exc
    if not isinstance(value, str) or not value.strip():
        raise ExpressionError(f"{where}: gave {value!r}; it must give a non-empty name")
    return value.strip()


def _element(task: Any) -> str:
    return f"element '{task.task_spec.bpmn_id}'"


def evaluate_inputs(task: Any, io: Mapping[str, Any], script_engine: Any) -> dict[str, Any]:
    """The locals of ``task`` from its input parameters, in order (a later parameter sees the
    earlier ones, as in Camunda)."""
    view = dict(task.data)
    local: dict[str, Any] = {}
    written: dict[str, Any] = {}  # JavaScript's execution.setVariable (engine.bpmn.script_bindings)
    with script_bindings.mapping_scope(task, view, written):
        for name, value in io["inputs"]:
            where = f"{_element(task)}: input parameter '{name}'"
            local[name] = evaluate_value(value, view, where=where, script_engine=script_engine)
            view[name] = local[name]
    task.data.update(written)
    return local


def locals_of(task: Any) -> dict[str, Any] | None:
    found = task.internal_data.get(LOCALS)
    return found if isinstance(found, dict) else None


def view(task: Any, local: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the activity sees: process variables, covered by its locals."""
    merged = dict(task.data)
    merged.update((locals_of(task) or {}) if local is None else local)
    return merged


def enter(task: Any, script_engine: Any) -> dict[str, Any]:
    """Evaluate and store the task's locals unless it already has them; returns them."""
    current = locals_of(task)
    if current is not None:
        return current
    io = io_of(task.task_spec)
    if not io:
        return {}  # nothing stored: tasks without a mapping keep their state as it was
    local = evaluate_inputs(task, io, script_engine) if io["inputs"] else {}
    task.internal_data[LOCALS] = local
    return local


def split(task: Any, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(locals after ``values`` were set, process variable updates): a name that is a local
    variable stays local, any other is a process variable."""
    local = dict(locals_of(task) or {})
    updates: dict[str, Any] = {}
    for name, value in values.items():
        if name in local:
            local[name] = value
        else:
            updates[name] = value
    return local, updates


def set_values(task: Any, values: Mapping[str, Any]) -> None:
    """Set variables on a waiting activity (a user task's completion): locals stay local."""
    local, updates = split(task, values)
    if locals_of(task) is not None:
        task.internal_data[LOCALS] = local
    task.data.update(updates)


def leave(task: Any, values: Mapping[str, Any], script_engine: Any) -> dict[str, Any]:
    """The process variable updates when the activity ends having set ``values``: the names
    that are not local, plus the output parameters evaluated over the local view. Changes
    nothing, so a failing output mapping leaves the task as it was."""
    local, updates = split(task, values)
    io = io_of(task.task_spec)
    if not io or not io["outputs"]:
        return updates
    scope = dict(task.data)
    scope.update(updates)
    scope.update(local)
    with script_bindings.mapping_scope(task, scope, updates, local):  # JavaScript's setVariable
        for name, value in io["outputs"]:
            where = f"{_element(task)}: output parameter '{name}'"
            updates[name] = evaluate_value(value, scope, where=where, script_engine=script_engine)
    return updates


def finish(task: Any, updates: Mapping[str, Any]) -> None:
    """Apply what ``leave`` computed and drop the locals."""
    task.data.update(updates)
    task.internal_data.pop(LOCALS, None)


def run_with_locals(task: Any, run: Any) -> Any:
    """Run ``run()`` (a script) with the locals in ``task.data``, then take them out again:
    assignments to a local stay local, a local covering a process variable leaves it as it
    was."""
    local = locals_of(task)
    if not local:
        return run()
    before = dict(task.data)
    task.data.update(local)
    try:
        return run()
    finally:
        after = task.data
        for name in local:
            if name in after:
                local[name] = after.pop(name)
            if name in before:
                after[name] = before[name]


# -- camunda:errorEventDefinition of external tasks -------------------------------------------


def read_error_events(node: etree._Element) -> list[dict[str, Any]]:
    """[{"id", "expression", "code", "message"}] of the activity's
    ``camunda:errorEventDefinition`` elements; ``code`` is the referenced ``bpmn:error``'s
    errorCode (None when the reference does not resolve; deployment refuses that)."""
    found = [
        child
        for ext in node.findall(f"{{{BPMN_NS}}}extensionElements")
        for child in ext.iter(camunda("errorEventDefinition"))
    ]
    if not found:
        return []
    errors = {e.get("id"): e for e in node.getroottree().getroot().iter(f"{{{BPMN_NS}}}error")}
    out = []
    for definition in found:
        error = errors.get((definition.get("errorRef") or "").strip())
        out.append(
            {
                "id": definition.get("id"),
                "expression": (definition.get("expression") or "").strip(),
                "code": error.get("errorCode") if error is not None else None,
                "message": error.get(camunda("errorMessage")) if error is not None else None,
            }
        )
    return out


def thrown_error(
    task: Any, config: Mapping[str, Any], values: Mapping[str, Any]
) -> tuple[str, str] | None:
    """(code, message) of the first ``camunda:errorEventDefinition`` whose expression is true
    once the worker's ``values`` are set, as Camunda decides when an external task completes;
    None to complete normally."""
    definitions = config.get("error_events") or []
    if not definitions:
        return None
    local, updates = split(task, values)
    scope = dict(task.data)
    scope.update(updates)
    scope.update(local)
    for definition in definitions:
        where = f"{_element(task)}: camunda:errorEventDefinition '{definition['id']}'"
        try:
            hit = juel.evaluate_condition(definition["expression"], scope)
        except ExpressionError as exc:
            raise ExpressionError(f"{where}: {exc}") from exc
        if hit:
            return str(definition["code"]), str(definition.get("message") or "")
    return None


# -- hooking specs ----------------------------------------------------------------------------


def _on_update(workflow: Any, task: Any) -> None:
    if task.internal_data.get(LOCALS) is None:
        enter(task, workflow.script_engine)


def _on_complete(workflow: Any, task: Any) -> None:
    finish(task, leave(task, {}, workflow.script_engine))


def attach(task_specs: Iterable[Any], nodes: Mapping[tuple[str, str], etree._Element]) -> None:
    """Give every spec with a ``camunda:inputOutput`` its parsed mapping and, unless it is a
    service-like task (mapped by the runtime), hook its start and end. ``nodes`` maps (file,
    element id) to the element."""
    from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask

    from engine.bpmn.specs import ServiceTask

    for ts in task_specs:
        bpmn_id = getattr(ts, "bpmn_id", None)
        if bpmn_id is None or isinstance(ts, LoopTask):
            continue  # a multi-instance activity maps per instance (its inner spec)
        node = nodes.get((str(getattr(ts._wf_spec, "file", "")), str(bpmn_id)))
        io = read_io(node) if node is not None else None
        if io is None:
            continue
        setattr(ts, SPEC_ATTR, io)
        if isinstance(ts, ServiceTask):
            continue
        if not ts.update_event.is_connected(_on_update):
            ts.update_event.connect(_on_update)
        if not ts.completed_event.is_connected(_on_complete):
            ts.completed_event.connect(_on_complete)
