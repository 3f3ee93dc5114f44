"""The script engine SpiffWorkflow calls for conditions and other expressions.

SpiffWorkflow's default evaluates every expression in a BPMN file as Python. BPMN is untrusted
input, so ours evaluates them with the safe JUEL-subset evaluator in ``engine.expressions.juel``
(a bare condition such as ``amount > 100`` is read as ``${amount > 100}``). Python script
tasks run only when the engine was created with ``allow_scripts=True``; otherwise reaching
one is a technical failure naming the task. JavaScript script tasks run in a sandbox
(``engine.expressions.javascript``) unless the engine was created with ``allow_javascript=False``.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

from engine.bpmn import loops, mappings, script_bindings
from engine.core.errors import ExpressionError
from engine.expressions import feel, juel


class ScriptsDisabled(ExpressionError):
    default_message = "script tasks are disabled"


class _SafeEnvironment(TaskDataEnvironment):  # type: ignore[misc]
    """SpiffWorkflow evaluates some model text through the environment directly (message
    correlation retrieval expressions): Python only when scripts are allowed, else the safe
    evaluator."""

    def __init__(self, engine: SafeScriptEngine) -> None:
        super().__init__()
        self.engine = engine

    def evaluate(self, expression: str, context: Any, external_context: Any = None) -> Any:
        if self.engine.allow_scripts:
            return super().evaluate(expression, context, external_context)
        variables = dict(context)
        variables.update(external_context or {})
        return evaluate_text(expression, variables)


class SafeScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    def __init__(
        self,
        allow_scripts: bool = False,
        max_loop_iterations: int = loops.DEFAULT_MAX_LOOP_ITERATIONS,
        allow_javascript: bool = True,
    ) -> None:
        super().__init__()
        self.environment = _SafeEnvironment(self)
        self.allow_scripts = allow_scripts
        #: JavaScript (script tasks and mapping scripts) runs sandboxed unless switched off.
        self.allow_javascript = allow_javascript
        #: Iterations after which a standard loop stops with an incident (engine.bpmn.loops).
        self.max_loop_iterations = max_loop_iterations

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        variables = dict(task.data)
        if external_context:
            variables.update(external_context)
        if expression.startswith(feel.MARKER):  # a FEEL condition (engine.deploy.rewrites)
            return feel.evaluate_condition(expression, variables, task.task_spec.bpmn_id)
        return evaluate_text(expression, variables)

    def execute(self, task: Any, script: str, external_context: Any = None) -> Any:
        if script_bindings.is_juel_task(task.task_spec):
            return mappings.run_with_locals(
                task, lambda: script_bindings.run_juel_task(task, script)
            )
        if script_bindings.is_javascript_task(task.task_spec):
            if not self.allow_javascript:
                raise ScriptsDisabled(
                    f"script task '{task.task_spec.bpmn_id}' cannot run: JavaScript is disabled "
                    "(the engine was created with allow_javascript=False)"
                )
            return mappings.run_with_locals(
                task, lambda: script_bindings.run_script_task(task, script)
            )
        if not self.allow_scripts:
            raise ScriptsDisabled(
                f"script task '{task.task_spec.bpmn_id}' cannot run: Python script tasks are "
                "disabled (create the engine with allow_scripts=True to trust them)"
            )
        # A script task with input mappings sees its local variables (engine.bpmn.mappings).
        return mappings.run_with_locals(
            task, lambda: super(SafeScriptEngine, self).execute(task, script, external_context)
        )


def evaluate_text(expression: str, variables: dict[str, Any]) -> Any:
    """Evaluate ``${...}`` text, or bare expression text, against variables."""
    text = expression.strip()
    if not juel.is_expression(text):
        text = "${" + text + "}"
    return juel.evaluate(text, variables)
