"""Where JavaScript scripts meet the process: script tasks and mapping scripts.

The parser records a script task's ``scriptFormat`` and ``camunda:resultVariable`` on its spec
(SpiffWorkflow keeps neither); ``engine.bpmn.scripting`` runs a JavaScript script task through
``run_script_task``, and ``engine.bpmn.mappings`` evaluates a JavaScript ``camunda:script`` value
through ``evaluate_mapping_script``. The sandbox itself is ``engine.expressions.javascript``.

``execution.setVariable(name, value)`` follows Camunda 7: in a script task it sets the task's
local variable of that name (an input parameter) or else a process variable; in an input
parameter it sets a process variable (Camunda evaluates inputs on the enclosing scope); in an
output parameter it sets a local if one has the name, else a process variable. Later
parameters of the same mapping see what earlier scripts set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.camunda.parser.task_spec import ScriptTaskParser as CamundaScriptTaskParser

from engine.bpmn import instance_context
from engine.bpmn.namespaces import camunda
from engine.core.errors import ExpressionError
from engine.expressions import javascript

#: Spec attributes of a script task: its scriptFormat (lower case) and resultVariable.
FORMAT_ATTR = "spillway_script_format"
RESULT_ATTR = "spillway_result_variable"


class ScriptTaskParser(CamundaScriptTaskParser):  # type: ignore[misc]
    """Camunda's script task parser, keeping the format and result variable on the spec."""

    def create_task(self) -> Any:
        task = super().create_task()
        setattr(task, FORMAT_ATTR, (self.node.get("scriptFormat") or "").strip().lower())
        result = (self.node.get(camunda("resultVariable")) or "").strip()
        setattr(task, RESULT_ATTR, result or None)
        return task


def is_javascript_task(task_spec: Any) -> bool:
    return javascript.is_javascript(getattr(task_spec, FORMAT_ATTR, None))


def execution_of(task: Any) -> javascript.Execution:
    """The ``execution`` a script of ``task`` sees. A called process runs inside the caller's
    instance here, so its instance id is the caller's; its business key is the one a
    ``camunda:in businessKey`` passed."""
    return javascript.Execution(
        process_instance_id=instance_context.instance_id_of(task),
        business_key=instance_context.process_business_key(task),
        activity_id=str(task.task_spec.bpmn_id),
    )


def run_script_task(task: Any, source: str | None) -> bool:
    """Run a JavaScript script task over its variables (locals in place: the caller wraps
    this in ``mappings.run_with_locals``); its ``setVariable`` calls become task data, its
    value the result variable. True: the task completes."""
    spec = task.task_spec
    result_variable = getattr(spec, RESULT_ATTR, None)
    outcome = javascript.run(
        source or "",
        task.data,
        execution_of(task),
        where=f"script task '{spec.bpmn_id}'",
        want_value=result_variable is not None,
    )
    task.data.update(outcome.writes)
    if result_variable is not None:
        task.data[result_variable] = outcome.value
    return True


# -- scripts in input/output parameters ---------------------------------------------------------


@dataclass
class _Scope:
    task: Any
    view: MutableMapping[str, Any]  # what the mapping's later parameters see
    sink: MutableMapping[str, Any]  # process variable updates
    local: Mapping[str, Any] | None  # names that stay local (output parameters)


_SCOPE: ContextVar[_Scope | None] = ContextVar("spillway_mapping_scope", default=None)


@contextmanager
def mapping_scope(
    task: Any,
    view: MutableMapping[str, Any],
    sink: MutableMapping[str, Any],
    local: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """While ``task``'s parameters are evaluated over ``view``: scripts' ``setVariable`` calls
    update ``view`` and, unless the name is in ``local``, ``sink``."""
    token = _SCOPE.set(_Scope(task, view, sink, local))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def evaluate_mapping_script(
    value: Mapping[str, Any], variables: Mapping[str, Any], where: str, engine: Any
) -> Any:
    """The value of a JavaScript ``camunda:script`` (its last expression) over ``variables``."""
    if engine is not None and not getattr(engine, "allow_javascript", True):
        raise ExpressionError(
            f"{where}: a JavaScript script cannot run: JavaScript is disabled (the engine was "
            "created with allow_javascript=False)"
        )
    scope = _SCOPE.get()
    execution = execution_of(scope.task) if scope is not None else javascript.Execution()
    outcome = javascript.run(str(value.get("source") or ""), variables, execution, where=where)
    if outcome.writes and scope is None:
        raise ExpressionError(
            f"{where}: execution.setVariable is available only in the input and output "
            "parameters of an activity"
        )
    if scope is not None:
        for name, written in outcome.writes.items():
            scope.view[name] = written
            if scope.local is None or name not in scope.local:
                scope.sink[name] = written
    return outcome.value


# -- what deploy refuses (engine.deploy.refusals asks) -----------------------------------------

#: Script languages run as Python (only with ``allow_scripts=True``).
PYTHON_FORMATS = frozenset({"python", "py", "python3"})
#: Script languages evaluated as one JUEL expression (``engine.expressions.juel``).
JUEL_FORMATS = frozenset({"juel", "el"})
#: Camunda 8's zeebe:script (engine.deploy.zeebe): one FEEL expression.
FEEL_FORMATS = frozenset({"feel"})


def is_juel_task(task_spec: Any) -> bool:
    return (getattr(task_spec, FORMAT_ATTR, None) or "") in JUEL_FORMATS | FEEL_FORMATS


def run_juel_task(task: Any, source: str | None) -> bool:
    """A ``scriptFormat="juel"`` script task: its text is an expression (``${a + b}``), its
    value goes to ``camunda:resultVariable`` (as in Camunda 7)."""
    from engine.expressions import feel, juel

    spec = task.task_spec
    try:
        if getattr(spec, FORMAT_ATTR, None) in FEEL_FORMATS:
            value = feel.evaluate((source or "").strip(), task.data, str(spec.bpmn_id))
        else:
            value = juel.evaluate((source or "").strip(), task.data)
    except ExpressionError as exc:
        raise ExpressionError(f"script task '{spec.bpmn_id}': {exc}") from exc
    result_variable = getattr(spec, RESULT_ATTR, None)
    if result_variable is not None:
        task.data[result_variable] = value
    return True


def script_task_problem(node: Any) -> str | None:
    """Why the ``bpmn:scriptTask`` ``node`` cannot run, or None."""
    declared = node.get("scriptFormat")
    fmt = (declared or "python").strip().lower()
    resource = node.get(camunda("resource"))
    if resource:
        return (
            f"a script task with camunda:resource '{resource}' cannot run: Spillway runs only "
            "scripts written in the model; copy the script into the task"
        )
    if javascript.is_javascript(fmt) or fmt in JUEL_FORMATS | FEEL_FORMATS:
        return None
    if fmt in PYTHON_FORMATS:
        if node.get(camunda("resultVariable")):
            return (
                "camunda:resultVariable on a Python script task is not supported; assign the "
                "variable in the script (or write the script in JavaScript)"
            )
        return None
    return (
        f"script task in {declared}: Spillway runs JavaScript script tasks (sandboxed), JUEL "
        "ones and Python ones (only when the engine is created with allow_scripts=True); "
        "rewrite it in JavaScript or make it a service task with a handler"
    )


def mapping_script_problem(node: Any) -> str | None:
    """Why the ``camunda:script`` ``node`` of a parameter cannot run, or None."""
    declared = node.get("scriptFormat")
    fmt = (declared or "").strip().lower()
    resource = node.get("resource")
    if not resource and (
        javascript.is_javascript(fmt) or fmt in PYTHON_FORMATS or fmt in JUEL_FORMATS
    ):
        return None
    what = f"{declared} script" if fmt else "script"
    if resource:
        what += f" from resource '{resource}'"
    return (
        f"a {what} in a mapping cannot run: Spillway evaluates expressions such as ${{a + b}}, "
        "inline JavaScript and, when allowed, inline Python scripts"
    )
