"""A SpiffWorkflow parser that keeps what Camunda Modeler and bpmn.io write.

SpiffWorkflow drops Camunda's service-task attributes; this parser reads them (and our own
``spillway:`` attributes, namespace ``urn:spillway:bpmn``) into ``spec.extensions``, a JSON-able
dict the runtime and the behaviours read. See ``read_activity_config`` for the keys.
"""

from __future__ import annotations

import re
import types
from typing import Any, ClassVar

from lxml import etree
from SpiffWorkflow.bpmn.parser import event_parsers
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import (
    BoundaryEventParser,
    EndEventParser,
    IntermediateCatchEventParser,
    IntermediateThrowEventParser,
    ReceiveTaskParser,
    SendTaskParser,
    StartEventParser,
)
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.specs.defaults import (
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    NoneTask,
    ReceiveTask,
    ScriptTask,
    SendTask,
)
from SpiffWorkflow.camunda.parser.CamundaParser import NSMAP as CAMUNDA_NSMAP
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import (
    CallActivityParser,
    CamundaTaskParser,
    SubWorkflowParser,
)
from SpiffWorkflow.camunda.specs.user_task import UserTask as CamundaUserTask

from engine.bpmn import (
    call_mappings,
    compensation,
    decisions,
    loops,
    mappings,
    script_bindings,
    specs,
    subprocess_mappings,
    timer_events,
)
from engine.bpmn.namespaces import (
    ACTIVITI_NS,
    BPMN_NS,
    CAMUNDA_NS,
    FLOWABLE_NS,
    SPIFF_NS,
    SPILLWAY_NS,
)
from engine.bpmn.specs import ServiceTask, StartEvent
from engine.deploy import spec_names
from engine.deploy.user_task_parser import UserTaskParser

NSMAP = dict(CAMUNDA_NSMAP)
NSMAP.update({"spillway": SPILLWAY_NS, "spiffworkflow": SPIFF_NS})

_SIMPLE_EXPRESSION = re.compile(r"^\s*[$#]\{\s*([A-Za-z_][\w.-]*)\s*\}\s*$")
_TRUE = {"true", "1", "yes"}


def _attr(node: etree._Element, ns: str, name: str) -> str | None:
    value = node.get(f"{{{ns}}}{name}")
    return value.strip() if value is not None and value.strip() else None


def _flag(node: etree._Element, ns: str, name: str) -> bool | None:
    value = _attr(node, ns, name)
    return None if value is None else value.lower() in _TRUE


def _ext_children(node: etree._Element, ns: str, local: str) -> list[etree._Element]:
    return [
        child
        for ext in node.findall(f"{{{BPMN_NS}}}extensionElements")
        for child in ext.iter(f"{{{ns}}}{local}")
    ]


def simple_expression_name(expression: str) -> str | None:
    """``${chargeCard}`` -> ``chargeCard``; None for anything more complex."""
    match = _SIMPLE_EXPRESSION.match(expression)
    return match.group(1) if match else None


def read_activity_config(node: etree._Element) -> dict[str, Any]:
    """Read an activity's engine-relevant attributes into a JSON-able dict.

    Keys: ``handler`` and ``handler_source`` (which attribute named it), ``delegate_expression``
    (a complex one, evaluated at run time), ``external`` and ``topic``, ``async_before``,
    ``async_after``, ``async_on_error`` (None: inherit), ``pooled``, ``retry_cycle``, ``retries``,
    ``properties``, ``expression`` and ``result_variable``.
    """
    cfg: dict[str, Any] = {"properties": {}}
    handler: str | None = None
    source: str | None = None

    candidates = [
        ("spillway:handler", _attr(node, SPILLWAY_NS, "handler"), False),
        ("camunda:delegateExpression", _attr(node, CAMUNDA_NS, "delegateExpression"), True),
        ("camunda:class", _attr(node, CAMUNDA_NS, "class"), False),
        ("activiti:class", _attr(node, ACTIVITI_NS, "class"), False),
        ("activiti:delegateExpression", _attr(node, ACTIVITI_NS, "delegateExpression"), True),
        ("flowable:class", _attr(node, FLOWABLE_NS, "class"), False),
        ("flowable:delegateExpression", _attr(node, FLOWABLE_NS, "delegateExpression"), True),
    ]
    for where, value, is_expression in candidates:
        if value is None:
            continue
        if is_expression:
            name = simple_expression_name(value)
            if name is None:
                cfg["delegate_expression"] = value
                source = where
                break
            value = name
        handler, source = value, where
        break
    if handler is None and source is None:
        for op in _ext_children(node, SPIFF_NS, "serviceTaskOperator"):
            if op.get("id"):
                handler, source = op.get("id"), "spiffworkflow:serviceTaskOperator"
                break
    cfg["handler"] = handler
    cfg["handler_source"] = source

    impl_type = _attr(node, CAMUNDA_NS, "type") or _attr(node, FLOWABLE_NS, "type")
    topic = _attr(node, SPILLWAY_NS, "topic") or _attr(node, CAMUNDA_NS, "topic")
    cfg["external"] = impl_type == "external" or _attr(node, SPILLWAY_NS, "topic") is not None
    cfg["topic"] = topic
    cfg["implementation_type"] = impl_type

    cfg["async_before"] = bool(
        _flag(node, CAMUNDA_NS, "asyncBefore")
        or _flag(node, CAMUNDA_NS, "async")
        or _flag(node, SPILLWAY_NS, "asyncBefore")
        or _flag(node, ACTIVITI_NS, "async")
        or _flag(node, FLOWABLE_NS, "async")
    )
    cfg["async_after"] = bool(
        _flag(node, CAMUNDA_NS, "asyncAfter") or _flag(node, SPILLWAY_NS, "asyncAfter")
    )
    cfg["async_on_error"] = _flag(node, SPILLWAY_NS, "asyncOnError")
    # spillway:pooled: an external task of topic = handler name, run by that worker pool.
    cfg["pooled"] = bool(_flag(node, SPILLWAY_NS, "pooled"))
    # Start events of event subprocesses: BPMN's default is interrupting.
    cfg["interrupting"] = (node.get("isInterrupting") or "true").strip().lower() != "false"

    cycles = [
        c.text.strip()
        for c in _ext_children(node, CAMUNDA_NS, "failedJobRetryTimeCycle")
        if c.text and c.text.strip()
    ]
    cfg["retry_cycle"] = _attr(node, SPILLWAY_NS, "retryTimeCycle") or (
        cycles[0] if cycles else None
    )
    retries = _attr(node, SPILLWAY_NS, "retries")
    cfg["retries"] = retries

    for prop in _ext_children(node, CAMUNDA_NS, "property"):
        name = prop.get("name")
        if name:
            cfg["properties"][name] = prop.get("value") or ""
    cfg["expression"] = _attr(node, CAMUNDA_NS, "expression")
    cfg["result_variable"] = _attr(node, CAMUNDA_NS, "resultVariable")
    # camunda:errorEventDefinition of an external task, evaluated when a worker completes it.
    cfg["error_events"] = mappings.read_error_events(node)
    return cfg


def is_service_like(node: etree._Element) -> bool:
    """Does this send/business-rule task carry an implementation the engine must call?"""
    cfg = read_activity_config(node)
    return bool(cfg["handler"] or cfg["handler_source"] or cfg["external"] or cfg["expression"])


class _ConfigMixin:
    """Stores ``read_activity_config`` on every spec it parses."""

    node: etree._Element

    def parse_extensions(self, node: etree._Element | None = None) -> dict[str, Any]:
        return read_activity_config(self.node if node is None else node)

    def parse_timer_event(self, event: etree._Element) -> Any:
        # Our timers fire by job, never by polling the wall clock (engine.bpmn.timer_events).
        return timer_events.parse_definition(self, event)


class ServiceTaskParser(_ConfigMixin, TaskParser):  # type: ignore[misc]
    pass


class _StartEventParser(_ConfigMixin, StartEventParser):  # type: ignore[misc]
    def create_task(self) -> Any:
        # SpiffWorkflow's start event parser skips error and escalation definitions, so the
        # start event of an error event subprocess became a none start event: it fired at
        # once and ran the error handling path on every start.
        definition = self.get_event_definition(
            [
                event_parsers.MESSAGE_EVENT_XPATH,
                event_parsers.SIGNAL_EVENT_XPATH,
                event_parsers.TIMER_EVENT_XPATH,
                event_parsers.CONDITIONAL_EVENT_XPATH,
                event_parsers.ERROR_EVENT_XPATH,
                event_parsers.ESCALATION_EVENT_XPATH,
            ]
        )
        task = self._create_task(definition)
        self.spec.start.connect(task)
        return task


class _EndEventParser(_ConfigMixin, EndEventParser):  # type: ignore[misc]
    def create_task(self) -> Any:
        # SpiffWorkflow's end event parser skips signal definitions: a signal end event
        # would end silently as a none end event instead of throwing its signal.
        definition = self.get_event_definition(
            [
                event_parsers.MESSAGE_EVENT_XPATH,
                event_parsers.CANCEL_EVENT_XPATH,
                event_parsers.ERROR_EVENT_XPATH,
                event_parsers.ESCALATION_EVENT_XPATH,
                event_parsers.TERMINATION_EVENT_XPATH,
                event_parsers.SIGNAL_EVENT_XPATH,
            ]
        )
        task = self._create_task(definition)
        task.connect(self.spec.end)
        return task

    def parse_signal_event(self, signal_event: etree._Element) -> Any:
        parsed = super().parse_signal_event(signal_event)
        return call_mappings.signal_definition(self.node, signal_event, parsed)


class _CatchEventParser(_ConfigMixin, IntermediateCatchEventParser):  # type: ignore[misc]
    pass


class _ThrowEventParser(_ConfigMixin, IntermediateThrowEventParser):  # type: ignore[misc]
    def parse_signal_event(self, signal_event: etree._Element) -> Any:
        parsed = super().parse_signal_event(signal_event)
        return call_mappings.signal_definition(self.node, signal_event, parsed)


class _CallActivityParser(CallActivityParser):  # type: ignore[misc]
    def create_task(self) -> Any:
        task = super().create_task()
        task.mappings = call_mappings.read_call_activity(self.node)
        return task


class _BoundaryEventParser(_ConfigMixin, BoundaryEventParser):  # type: ignore[misc]
    pass


class _ReceiveTaskParser(_ConfigMixin, ReceiveTaskParser):  # type: ignore[misc]
    pass


def _send_task_parser(
    process_parser: Any, spec_class: Any, node: Any, nsmap: Any, lane: Any = None
) -> Any:
    # A send task with camunda:class / external topic is a service task to Camunda.
    if is_service_like(node):
        return ServiceTaskParser(process_parser, ServiceTask, node, nsmap, lane=lane)
    return _ConfigSendTaskParser(process_parser, SendTask, node, nsmap, lane=lane)


class _ConfigSendTaskParser(_ConfigMixin, SendTaskParser):  # type: ignore[misc]
    pass


class _BusinessRuleTaskParsers:
    """A business rule task naming a DMN decision evaluates it; any other is service-like.

    SpiffWorkflow's DMN parser also asks this entry for ``get_decision_ref`` while it
    collects dependencies; its own raises KeyError for tasks without one.
    """

    def __call__(
        self, process_parser: Any, spec_class: Any, node: Any, nsmap: Any, lane: Any = None
    ) -> Any:
        if decisions.decision_ref(node) is not None:
            return decisions.DecisionTaskParser(
                process_parser, decisions.DecisionTask, node, nsmap, lane=lane
            )
        return ServiceTaskParser(process_parser, ServiceTask, node, nsmap, lane=lane)

    @staticmethod
    def get_decision_ref(node: etree._Element) -> str | None:
        return decisions.decision_ref(node)


class _PassThroughTaskParser(CamundaTaskParser):  # type: ignore[misc]
    """``bpmn:task`` (bpmn.io's default shape, an activity without a type) passes straight
    through, as in Camunda 7 and 8; SpiffWorkflow would make it a wait state like a manual task."""

    def create_task(self) -> Any:
        spec = super().create_task()
        spec.manual = False
        return spec


class SpillwayParser(CamundaParser):  # type: ignore[misc]
    """CamundaParser (forms, DMN, multi-instance collections) with the engine's task classes.

    Message events use SpiffWorkflow's base message definition so a correlated message's
    variables land in the process data, as in Camunda.
    """

    # Elements named like SpiffWorkflow's own specs (Start, End...) keep their ids: spec_names.
    PROCESS_PARSER_CLASS = spec_names.SpillwayProcessParser
    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, Any]] = dict(CamundaParser.OVERRIDE_PARSER_CLASSES)
    OVERRIDE_PARSER_CLASSES.update(
        {
            full_tag("serviceTask"): (ServiceTaskParser, ServiceTask),
            full_tag("task"): (_PassThroughTaskParser, NoneTask),
            # camunda:assignee, candidateUsers... for the task list (engine.runtime.user_tasks).
            full_tag("userTask"): (UserTaskParser, CamundaUserTask),
            full_tag("sendTask"): (_send_task_parser, SendTask),
            full_tag("businessRuleTask"): (_BusinessRuleTaskParsers(), decisions.DecisionTask),
            full_tag("startEvent"): (_StartEventParser, StartEvent),
            full_tag("endEvent"): (_EndEventParser, EndEvent),
            full_tag("intermediateCatchEvent"): (_CatchEventParser, IntermediateCatchEvent),
            full_tag("intermediateThrowEvent"): (_ThrowEventParser, IntermediateThrowEvent),
            full_tag("boundaryEvent"): (_BoundaryEventParser, specs.BoundaryEvent),
            full_tag("receiveTask"): (_ReceiveTaskParser, ReceiveTask),
            full_tag("callActivity"): (_CallActivityParser, call_mappings.MappedCallActivity),
            # Input parameters of a subprocess are locals of its scope (bpmn.subprocess_mappings).
            full_tag("subProcess"): (SubWorkflowParser, subprocess_mappings.SubProcess),
            full_tag("transaction"): (SubWorkflowParser, subprocess_mappings.Transaction),
            # Keeps scriptFormat and camunda:resultVariable (engine.bpmn.script_bindings).
            full_tag("scriptTask"): (script_bindings.ScriptTaskParser, ScriptTask),
            full_tag("exclusiveGateway"): (
                compensation.exclusive_gateway_parser,
                compensation.ExclusiveGateway,
            ),
        }
    )

    def __init__(self) -> None:
        super().__init__(namespaces=NSMAP)

    def _get_parser_class(self, tag: str) -> tuple[Any, Any]:
        # Standard loops stop at the engine's iteration cap (engine.bpmn.loops).
        node_parser, spec_class = super()._get_parser_class(tag)
        if node_parser is None:
            return None, spec_class
        return _StandardMultiInstance(loops.looping(node_parser)), spec_class


class _StandardMultiInstance:
    """Wraps a node-parser class (or factory) so every activity reads multi-instance the BPMN
    way (``loopDataInputRef``, ``inputDataItem``, ``loopCardinality``...).

    SpiffWorkflow's Camunda parsers (user tasks, subprocesses, call activities...) read only
    ``camunda:collection``/``elementVariable`` and its service-task parser only BPMN's
    elements, so each kind of activity refused what the other wrote. ``engine.deploy.rewrites``
    turns Camunda's attributes into BPMN's elements; this makes every parser read those.
    Other attributes (such as ``get_decision_ref``) pass through.
    """

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        node_parser = self.wrapped(*args, **kwargs)
        if isinstance(node_parser, CamundaTaskParser):
            node_parser._add_multiinstance_task = types.MethodType(
                TaskParser._add_multiinstance_task, node_parser
            )
        if isinstance(node_parser, TaskParser):
            node_parser.SEQUENTIAL_MI_CLASS = specs.SequentialMultiInstance
            node_parser.PARALLEL_MI_CLASS = specs.ParallelMultiInstance
        return node_parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
