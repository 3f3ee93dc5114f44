"""Running listeners in a run: the listener host ``engine.bpmn.listeners`` fires through.

A listener calls a registered handler (``camunda:class``, a delegate expression, Camunda 8's
``type``), evaluates an expression (``${execution.setVariable('a', 1)}`` sets ``a``), or runs an
inline script (JavaScript; Python only with ``allow_scripts=True``). A handler gets an ordinary
``TaskContext`` with ``event`` set and returns the variables to set, like any handler. Any failure
is a ``ListenerFailed`` (a ``HandlerError``) naming the element, the event and the listener:
raised out of the step, so the engine call (or the job) that ran the step fails and nothing of it
is committed; on a service-like task the activation turns it into the task's technical failure
(see ``engine.runtime.activation``).

``fire_task_event(run, task, event)`` fires a user task's task listeners for ``event`` (such as
``assignment`` when a task is claimed) from any command that has the run and the task.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

from engine.bpmn import instance_context, listeners, mappings, script_bindings
from engine.core.errors import BpmnError, EngineError, HandlerError
from engine.core.values import TaskContext
from engine.core.variables import check_variables
from engine.expressions import javascript
from engine.expressions import juel as expressions


class ListenerServices(Protocol):
    """What a listener needs from the engine."""

    def handler_for(self, name: str) -> Any: ...
    @property
    def script_engine(self) -> Any: ...


class ListenerRun(Protocol):
    """What a listener needs from the run it fires in (``engine.runtime.run.Run`` is one)."""

    @property
    def services(self) -> ListenerServices: ...
    @property
    def model(self) -> Any: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def business_key(self) -> str | None: ...


_SET_VARIABLE = re.compile(
    r"^\s*[$#]\{\s*execution\s*\.\s*setVariable(?:Local)?\s*\(\s*(['\"])([^'\"]+)\1\s*,(.*)\)\s*\}\s*$",
    re.DOTALL,
)


class ListenerFailed(HandlerError):
    """A listener failed: the step it listens to fails with it."""

    default_message = "listener failed"


def describe(record: Mapping[str, Any], event: str, activity_id: str) -> str:
    kind, value = record.get("kind"), record.get("value")
    what = {
        "class": f"class '{value}'",
        "delegate": f"delegateExpression '{value}'",
        "expression": f"expression '{value}'",
        "script": f"{record.get('format') or 'inline'} script",
        "type": f"type '{value}'",
    }.get(str(kind), str(kind))
    return f"{record.get('source', 'listener')} ({event}, {what}) of element '{activity_id}'"


class RunListenerHost:
    """Runs listeners for one ``Run``."""

    def __init__(self, run: ListenerRun) -> None:
        self.run = run

    def call(
        self, task: Any, listener: dict[str, Any], event: str, activity_id: str
    ) -> dict[str, Any]:
        where = describe(listener, event, activity_id)
        try:
            result = self._call(task, listener, event, activity_id)
            return check_variables(result, where) or {}
        except ListenerFailed:
            raise
        except BpmnError as err:
            raise ListenerFailed(
                f"{where} threw BPMN error '{err.code}'; a listener cannot throw BPMN errors "
                "here: throw it from a service task",
                activity_id=str(task.task_spec.bpmn_id),
            ) from err
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ListenerFailed(
                f"{where} failed: {text}", activity_id=str(task.task_spec.bpmn_id)
            ) from exc

    def _call(
        self, task: Any, listener: Mapping[str, Any], event: str, activity_id: str
    ) -> Mapping[str, Any] | None:
        kind, value = str(listener.get("kind")), str(listener.get("value") or "")
        view = mappings.view(task)
        if kind == "expression":
            match = _SET_VARIABLE.match(value)
            if match:
                return {match.group(2): expressions.evaluate("${" + match.group(3) + "}", view)}
            expressions.evaluate(value, view)
            return None
        if kind == "script":
            return self._script(task, listener, view, activity_id)
        name = value
        if kind == "delegate":
            simple = _simple_name(value)
            name = simple or mappings.evaluate_name(task, value, "delegateExpression")
        handler = self.run.services.handler_for(name)
        if handler is None:
            raise ListenerFailed(
                f"{describe(listener, event, activity_id)}: no handler registered under '{name}'",
                activity_id=str(task.task_spec.bpmn_id),
            )
        context = TaskContext(
            variables=MappingProxyType(copy.deepcopy(view)),
            instance_id=self.run.instance_id,
            activity_id=activity_id,
            business_key=instance_context.business_key_of(task, self.run.business_key),
            attempt=1,
            idempotency_key=f"{self.run.instance_id}:{task.id}:{event}:{name}",
            process_key=self.run.model.key,
            properties=MappingProxyType(_properties(listener, view)),
            event=event,
        )
        result: Mapping[str, Any] | None = handler(context)
        return result

    def _script(
        self, task: Any, listener: Mapping[str, Any], view: dict[str, Any], activity_id: str
    ) -> dict[str, Any]:
        source = str(listener.get("value") or "")
        script_format = str(listener.get("format") or "")
        engine = self.run.services.script_engine
        where = f"element '{activity_id}': listener script"
        if javascript.is_javascript(script_format):
            if not getattr(engine, "allow_javascript", True):
                raise EngineError(f"{where}: JavaScript is disabled (allow_javascript=False)")
            outcome = javascript.run(
                source, view, script_bindings.execution_of(task), where=where, want_value=False
            )
            return outcome.writes
        if not getattr(engine, "allow_scripts", False):
            raise EngineError(
                f"{where}: a Python script cannot run: scripts are disabled (create the engine "
                "with allow_scripts=True to trust them)"
            )
        context = copy.deepcopy(view)
        before = copy.deepcopy(view)
        engine.environment.execute(ast.unparse(ast.parse(source)), context, {})
        return {k: v for k, v in context.items() if k not in before or before[k] != v}


def _simple_name(text: str) -> str | None:
    match = re.match(r"^\s*[$#]\{\s*([A-Za-z_][\w.-]*)\s*\}\s*$", text)
    return match.group(1) if match else None


def _properties(listener: Mapping[str, Any], view: Mapping[str, Any]) -> dict[str, Any]:
    """``camunda:field`` injections of a listener (expressions evaluated now)."""
    out: dict[str, Any] = {}
    for name, kind, text in listener.get("fields") or ():
        out[str(name)] = expressions.evaluate(str(text), view) if kind == "expression" else text
    return out


def fire_task_event(run: ListenerRun, task: Any, event: str) -> dict[str, Any]:
    """Fire the task listeners of user task ``task`` for ``event`` (``create``,
    ``assignment``, ``complete``, ``delete``) inside ``run``; their variables are set on the
    task and returned. Raises ``ListenerFailed`` when one fails: the command must fail too."""
    listeners.bind_host(task.workflow.top_workflow, RunListenerHost(run))
    return listeners.fire(task, "task", event)


def fire_activity_event(run: ListenerRun, task: Any, event: str) -> dict[str, Any]:
    """Fire the execution listeners of ``task`` for ``event`` (used for service-like tasks,
    whose ``start`` and ``end`` are part of their activation)."""
    return listeners.fire(task, "execution", event)
