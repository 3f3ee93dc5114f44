"""Camunda's ``camunda:in`` / ``camunda:out`` variable mappings on call activities and signals.

A call activity with mappings passes into the called process only what its ``camunda:in``
elements name, and takes back only what its ``camunda:out`` elements name (Camunda 7). A call
activity with no ``camunda:in`` and no ``camunda:out`` at all keeps Spillway's earlier meaning:
every variable passes both ways (see docs/modeling.md). ``camunda:in`` inside the
``signalEventDefinition`` of a signal intermediate throw or end event chooses the variables the
signal carries to its catchers.

Mappings are read from the BPMN at parse time into frozen values kept on the spec (specs are
never serialized: instances store the spec by reference). Expressions go through the safe
evaluator in ``engine.expressions.juel``; nothing here evaluates user text any other way.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.specs.defaults import CallActivity
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.util import BpmnEvent

from engine.bpmn import instance_context
from engine.bpmn import mappings as io_mappings
from engine.bpmn.namespaces import BPMN_NS, camunda
from engine.core.errors import ExpressionError
from engine.expressions import juel

#: Reserved variable through which expressions read the business key (engine.expressions.juel).
BUSINESS_KEY_VARIABLE = "__business_key__"

# Camunda Spin's S('...') / JSON('...') around one string literal: the parsed JSON value.
_SPIN_LITERAL = re.compile(
    r"""^\s*[$#]\{\s*(?:S|JSON)\(\s*('(?:[^'\\]|\\[\s\S])*'|"(?:[^"\\]|\\[\s\S])*")\s*\)\s*\}\s*$"""
)
_SOURCES = ("source", "sourceExpression", "variables", "businessKey")


@dataclass(frozen=True)
class VariableMapping:
    """One ``camunda:in`` or ``camunda:out`` element.

    kind: ``variable`` (source names a variable), ``expression`` (source is an expression),
    ``all`` (every variable) or ``business_key`` (source is the called instance's key).
    """

    kind: str
    source: str = ""
    target: str = ""
    local: bool = False


@dataclass(frozen=True)
class Mappings:
    """The mappings of one element, in document order."""

    element_id: str
    inputs: tuple[VariableMapping, ...] = ()
    outputs: tuple[VariableMapping, ...] = ()


# --- reading the BPMN ---------------------------------------------------------------------------


def mapping_elements(node: etree._Element, local: str) -> list[etree._Element]:
    """The ``camunda:<local>`` children of ``node``'s own extensionElements."""
    return [
        child
        for ext in node.findall(f"{{{BPMN_NS}}}extensionElements")
        for child in ext.findall(camunda(local))
    ]


def _mapping(element: etree._Element) -> VariableMapping:
    local = (element.get("local") or "").strip().lower() == "true"
    target = (element.get("target") or "").strip()
    if element.get("businessKey") is not None:
        return VariableMapping("business_key", str(element.get("businessKey")))
    if element.get("sourceExpression") is not None:
        return VariableMapping("expression", str(element.get("sourceExpression")), target, local)
    if element.get("source") is not None:
        return VariableMapping("variable", str(element.get("source")).strip(), target, local)
    return VariableMapping("all", local=local)


def read_call_activity(node: etree._Element) -> Mappings | None:
    """A call activity's mappings; None when it has no camunda:in and no camunda:out."""
    ins, outs = mapping_elements(node, "in"), mapping_elements(node, "out")
    if not ins and not outs:
        return None
    return Mappings(
        str(node.get("id")),
        tuple(_mapping(e) for e in ins),
        tuple(_mapping(e) for e in outs),
    )


def read_signal(event: etree._Element, definition: etree._Element) -> Mappings | None:
    """The camunda:in mappings of a throwing event's signalEventDefinition, if any."""
    ins = mapping_elements(definition, "in")
    if not ins:
        return None
    return Mappings(str(event.get("id")), tuple(_mapping(e) for e in ins))


# --- checks at deploy time ----------------------------------------------------------------------

_THROWING = ("intermediateThrowEvent", "endEvent")


def _check_expression(text: str, what: str) -> str | None:
    if _SPIN_LITERAL.match(text):
        try:
            _spin_value(text)
        except (ExpressionError, ValueError) as exc:
            return f"{what} '{text}' is not valid JSON: {exc}"
        return None
    try:
        juel.compile_expression(text)
    except ExpressionError as exc:
        return f"{what} cannot be evaluated: {exc}"
    return None


def problem(element: etree._Element) -> str | None:
    """Why deploy must refuse this camunda:in / camunda:out element, or None if it runs."""
    name = etree.QName(element).localname
    holder = element.getparent()
    holder = holder.getparent() if holder is not None else None  # past extensionElements
    where = etree.QName(holder).localname if holder is not None else ""
    owner = holder.getparent() if holder is not None else None
    on_signal = (
        where == "signalEventDefinition"
        and owner is not None
        and etree.QName(owner).localname in _THROWING
    )
    if where != "callActivity" and not on_signal:
        return (
            f"camunda:{name} applies only to call activities and to the signal definition of "
            "a signal intermediate throw or end event; it has no effect here"
        )
    if on_signal and name == "out":
        return "camunda:out has no meaning on a signal event: a signal carries variables one way"
    given = [a for a in _SOURCES if element.get(a) is not None]
    if name == "out" and "businessKey" in given:
        return "camunda:out cannot set a business key (it is fixed when an instance starts)"
    if len(given) != 1:
        return (
            f"camunda:{name} needs exactly one of source, sourceExpression, variables"
            + (", businessKey" if name == "in" else "")
            + f" (found {', '.join(given) or 'none'})"
        )
    attr = given[0]
    local = (element.get("local") or "").strip().lower()
    if local not in ("", "true", "false"):
        return f'camunda:{name} local="{element.get("local")}" must be true or false'
    if attr == "variables" and (element.get("variables") or "").strip() != "all":
        return f'camunda:{name} variables="{element.get("variables")}": only "all" exists'
    if attr in ("source", "sourceExpression") and not (element.get("target") or "").strip():
        return f"camunda:{name} with {attr} needs a target variable name"
    if attr == "source" and not (element.get("source") or "").strip():
        return f"camunda:{name} has an empty source variable name"
    if attr == "businessKey":
        if on_signal:
            return (
                "camunda:in businessKey on a signal has no meaning here: signals reach "
                "catchers in the same instance, whose business key is fixed"
            )
        return _check_expression(str(element.get("businessKey")), "camunda:in businessKey")
    if attr == "sourceExpression":
        return _check_expression(str(element.get("sourceExpression")), f"camunda:{name}")
    return None


# --- evaluation ---------------------------------------------------------------------------------


def _spin_value(text: str) -> Any:
    match = _SPIN_LITERAL.match(text)
    assert match is not None
    literal = juel.evaluate("${" + match.group(1) + "}", {})
    return json.loads(str(literal))


def _evaluate(text: str, variables: Mapping[str, Any], element_id: str, what: str) -> Any:
    try:
        if _SPIN_LITERAL.match(text):
            return _spin_value(text)
        return juel.evaluate(text, variables)
    except (ExpressionError, ValueError) as exc:
        raise ExpressionError(f"element '{element_id}': {what}: {exc}") from exc


def _scope(variables: Mapping[str, Any], business_key: str | None) -> dict[str, Any]:
    scope = dict(variables)
    scope.setdefault(BUSINESS_KEY_VARIABLE, business_key)
    return scope


def map_variables(
    mappings: Iterable[VariableMapping],
    variables: Mapping[str, Any],
    *,
    element_id: str,
    direction: str,
    business_key: str | None,
    local_variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables ``mappings`` pass, in document order (a later mapping of the same target
    wins). A missing source variable passes as None, as Camunda's getVariable gives null.
    ``local_variables``: what a ``local="true"`` mapping reads (the activity's locals)."""
    result: dict[str, Any] = {}
    for m in mappings:
        visible: Mapping[str, Any] = variables
        if m.local:
            visible = local_variables or {}
        if m.kind == "all":
            result.update(copy.deepcopy(dict(visible)))
        elif m.kind == "variable":
            result[m.target] = copy.deepcopy(visible.get(m.source))
        elif m.kind == "expression":
            what = f"camunda:{direction} sourceExpression for '{m.target}'"
            value = _evaluate(m.source, _scope(visible, business_key), element_id, what)
            result[m.target] = copy.deepcopy(value)
    return result


# --- the specs ----------------------------------------------------------------------------------


#: How deep called processes (and embedded subprocesses around them) may nest.
MAX_CALL_DEPTH = 50


class MappedCallActivity(CallActivity):  # type: ignore[misc]
    """A call activity that applies its camunda:in / camunda:out mappings, if it has any.

    The call activity's own ``camunda:inputOutput`` locals (``engine.bpmn.mappings``) are in place
    when the called process starts and still there when it ends: in-mappings see process
    variables covered by the locals (``local="true"``: the locals only), out-mappings set
    process variables, or locals where the name is one, and ``local="true"`` ones only locals
    (for the output parameters, which run when the call activity completes)."""

    mappings: Mappings | None = None

    def start_workflow(self, my_task: Any) -> None:
        depth, workflow = 0, my_task.workflow
        while getattr(workflow, "parent_workflow", None) is not None:
            depth += 1
            workflow = workflow.parent_workflow
        if depth >= MAX_CALL_DEPTH:
            raise ExpressionError(
                f"call activity '{self.bpmn_id}': called processes nested {depth} deep (the "
                f"limit is {MAX_CALL_DEPTH}); a process that calls itself without end?"
            )
        super().start_workflow(my_task)

    def copy_data(self, my_task: Any, subworkflow: Any) -> None:
        m = self.mappings
        start = subworkflow.get_next_task(
            subworkflow.task_tree, skip_subprocesses=True, spec_name="Start"
        )
        if m is None:
            super().copy_data(my_task, subworkflow)
            # Everything passes, as with camunda:in variables="all": the locals too.
            start.set_data(**copy.deepcopy(io_mappings.locals_of(my_task) or {}))
            return
        caller_key = instance_context.process_business_key(my_task)
        visible = io_mappings.view(my_task)
        variables = map_variables(
            m.inputs,
            visible,
            element_id=m.element_id,
            direction="in",
            business_key=caller_key,
            local_variables=io_mappings.locals_of(my_task),
        )
        start.set_data(**variables)
        for key_mapping in (x for x in m.inputs if x.kind == "business_key"):
            scope = _scope(visible, caller_key)
            value = _evaluate(key_mapping.source, scope, m.element_id, "camunda:in businessKey")
            instance_context.set_called_business_key(my_task, value)

    def update_data(self, my_task: Any, subworkflow: Any) -> None:
        m = self.mappings
        if m is None and io_mappings.locals_of(my_task) is None:
            super().update_data(my_task, subworkflow)
            return
        if m is None:
            # As camunda:out variables="all": a name that is a local updates the local.
            io_mappings.set_values(my_task, copy.deepcopy(subworkflow.last_task.data))
            return
        end = subworkflow.last_task

        def mapped(local: bool) -> dict[str, Any]:
            return map_variables(
                [x for x in m.outputs if x.local is local],
                end.data,
                element_id=m.element_id,
                direction="out",
                business_key=instance_context.process_business_key(end),
                # local="true" on an out-mapping names where the value goes (the call
                # activity's locals); it still reads the called process's variables.
                local_variables=end.data,
            )

        io_mappings.set_values(my_task, mapped(False))
        local = io_mappings.locals_of(my_task)
        if local is not None:  # without camunda:inputOutput they would vanish unread
            local.update(mapped(True))


class MappedSignalEventDefinition(SignalEventDefinition):  # type: ignore[misc]
    """A thrown signal whose payload is its camunda:in mappings, not the thrower's data."""

    def __init__(self, name: str, mappings: Mappings, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.mappings = mappings

    def throw(self, my_task: Any) -> None:
        m = self.mappings
        payload = map_variables(
            m.inputs,
            io_mappings.view(my_task),
            element_id=m.element_id,
            direction="in",
            business_key=instance_context.process_business_key(my_task),
            local_variables=io_mappings.locals_of(my_task),
        )
        # Catchers hold plain signal definitions, which match only their own class.
        plain = SignalEventDefinition(self.name, description=self.description)
        my_task.workflow.top_workflow.catch(BpmnEvent(plain, payload=payload))


def signal_definition(event: etree._Element, definition_node: etree._Element, parsed: Any) -> Any:
    """The definition a throwing event's parser made, with its camunda:in mappings if any."""
    mappings = read_signal(event, definition_node)
    if mappings is None or not isinstance(parsed, SignalEventDefinition):
        return parsed
    return MappedSignalEventDefinition(parsed.name, mappings, description=parsed.description)
