"""Multi-instance collections given by an expression, not a variable.

Camunda 8 writes ``inputCollection="=order.items"`` (FEEL) and Camunda 7
``camunda:collection="${order.items}"`` (JUEL). SpiffWorkflow reads a multi-instance collection
from one variable, so ``engine.deploy.rewrites`` points the activity at a variable of the engine's
own (``spillway_mi_<element id>``) and keeps the expression in ``spillway:collection``; here the
expression is evaluated into that variable when the token reaches the activity (before
SpiffWorkflow reads it), and the variable is dropped when the activity ends. A result that is
not a list (a missing variable: null) is an ``ExpressionError`` naming the element.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree

from engine.core.errors import ExpressionError
from engine.expressions import feel
from engine.expressions import juel as expressions

SPILLWAY_NS = "urn:spillway:bpmn"
COLLECTION_ATTR = f"{{{SPILLWAY_NS}}}collection"
#: Camunda 8's ``outputElement`` when it is an expression (``={id: id, ok: ok}``).
OUTPUT_ATTR = f"{{{SPILLWAY_NS}}}outputElement"
OUTPUT_SPEC_ATTR = "spillway_output_element"
#: Spec attribute: (expression, variable name).
SPEC_ATTR = "spillway_collection"
PREFIX = "spillway_mi_"
_MI = "{http://www.omg.org/spec/BPMN/20100524/MODEL}multiInstanceLoopCharacteristics"


def variable_for(element_id: str) -> str:
    return f"{PREFIX}{element_id}"


def evaluate(expression: str, variables: Mapping[str, Any], element: str) -> list[Any]:
    if expression.startswith(feel.MARKER) or expression.lstrip().startswith("="):
        text = expression if expression.startswith(feel.MARKER) else feel.MARKER + expression
        value = feel.evaluate(text, variables, element)
    else:
        value = expressions.evaluate(expression, variables)
    if not isinstance(value, list):
        raise ExpressionError(
            f"element '{element}': the multi-instance collection {expression.strip()} gave "
            f"{value!r}; it must give a list"
        )
    return value


def _on_update(workflow: Any, task: Any) -> None:
    expression, variable = getattr(task.task_spec, SPEC_ATTR)
    if variable in task.data and task.internal_data.get(SPEC_ATTR):
        return
    task.data[variable] = evaluate(expression, task.data, str(task.task_spec.bpmn_id))
    task.internal_data[SPEC_ATTR] = True


def _on_complete(workflow: Any, task: Any) -> None:
    _, variable = getattr(task.task_spec, SPEC_ATTR)
    task.data.pop(variable, None)


def output_variable_for(element_id: str) -> str:
    return f"{PREFIX}out_{element_id}"


def _on_instance_complete(workflow: Any, task: Any) -> None:
    """One instance ended: its output element, evaluated over what it sees."""
    expression, variable = getattr(task.task_spec, OUTPUT_SPEC_ATTR)
    task.data[variable] = feel.evaluate(expression, task.data, str(task.task_spec.bpmn_id))


def attach(task_specs: Iterable[Any], nodes: Mapping[tuple[str, str], etree._Element]) -> None:
    from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask

    for ts in task_specs:
        if not isinstance(ts, LoopTask):
            continue
        node = nodes.get((str(getattr(ts._wf_spec, "file", "")), str(ts.bpmn_id)))
        loop = None if node is None else node.find(_MI)
        if loop is None:
            continue
        output = loop.get(OUTPUT_ATTR)
        inner = ts._wf_spec.task_specs.get(ts.task_spec)
        if output and inner is not None:
            text = output if output.startswith(feel.MARKER) else feel.MARKER + output
            setattr(inner, OUTPUT_SPEC_ATTR, (text, output_variable_for(str(ts.bpmn_id))))
            if not inner.completed_event.is_connected(_on_instance_complete):
                inner.completed_event.connect(_on_instance_complete)
        expression = loop.get(COLLECTION_ATTR)
        if not expression:
            continue
        setattr(ts, SPEC_ATTR, (expression, variable_for(str(ts.bpmn_id))))
        if not ts.update_event.is_connected(_on_update):
            ts.update_event.connect(_on_update)
        if not ts.completed_event.is_connected(_on_complete):
            ts.completed_event.connect(_on_complete)
