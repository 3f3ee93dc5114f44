"""Rewriting what modelers draw into the BPMN subset SpiffWorkflow parses.

BPMN allows several shortcuts that SpiffWorkflow's parser refuses or misreads. Each is rewritten
in the parsed tree, before SpiffWorkflow sees it, into the explicit construct the BPMN
specification says it means. Elements added here carry ``spillway:synthetic="true"``: they
run like any other element but stay out of history and ``waiting_at``.

- **Implicit start and end** (BPMN 2.0, 10.5.2/10.5.3): a process or embedded subprocess without
  a start event starts every flow node that has no incoming sequence flow (except boundary
  events, event subprocesses and compensation handlers); one without an end event ends where
  its paths end. A synthetic none start/end event is added and connected.
- **Uncontrolled flow**: several outgoing sequence flows from an activity or event split the
  token. Without conditions that is a parallel split (a synthetic parallel gateway is added after
  the element); with conditions on any of them it is an inclusive split (a synthetic inclusive
  gateway: every flow whose condition holds is taken, a flow without condition always is, the
  element's ``default`` flow only when no condition holds).
- **Gateway flows without a condition**: on an exclusive or inclusive gateway a non-default
  flow without a condition counts as always true, as in Camunda (which takes the first such
  flow of an exclusive gateway in document order; so does Spillway).
- **Link events**: an intermediate throw event with a link definition continues at the catch
  event of the same link name in the same process or subprocess; the pair becomes a sequence
  flow between the two events.
- **Data**: data objects, data stores, data associations and ``ioSpecification`` are
  documentation, as in Camunda 7: tasks read and write process variables. They are removed
  from the tree so the parser neither needs a data-store implementation nor moves variables
  in and out of data objects.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from engine.bpmn.namespaces import (
    BPMN_NS,
    SYNTHETIC,
    XSI_TYPE,
)
from engine.core.errors import DeploymentError

ACTIVITIES = frozenset(
    {
        "task",
        "userTask",
        "serviceTask",
        "sendTask",
        "receiveTask",
        "manualTask",
        "businessRuleTask",
        "scriptTask",
        "subProcess",
        "transaction",
        "adHocSubProcess",
        "callActivity",
    }
)
EVENTS = frozenset(
    {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
)
GATEWAYS = frozenset(
    {
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
FLOW_NODES = ACTIVITIES | EVENTS | GATEWAYS
#: Scopes whose start and end may be implicit (event subprocesses need their start event).
_SCOPES = ("process", "subProcess", "transaction")
#: Removed everywhere: the data perspective is documentation (see the module docstring).
_DATA_ELEMENTS = ("dataInputAssociation", "dataOutputAssociation", "ioSpecification", "dataStore")


def _q(local: str) -> str:
    return f"{{{BPMN_NS}}}{local}"


def local_name(node: etree._Element) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def is_bpmn(node: etree._Element, *names: str) -> bool:
    return (
        isinstance(node.tag, str)
        and node.tag.startswith(f"{{{BPMN_NS}}}")
        and (not names or local_name(node) in names)
    )


class _Ids:
    """Unique ids for synthetic elements of one document."""

    def __init__(self, root: etree._Element) -> None:
        self.taken = {n.get("id") for n in root.iter() if isinstance(n.tag, str) and n.get("id")}

    def new(self, base: str) -> str:
        candidate, n = base, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{base}{n}"
        self.taken.add(candidate)
        return candidate


class _Scope:
    """The flow nodes and sequence flows directly inside one process or subprocess, with the
    flows indexed by source and target (a scan per node made a 10,000-task chain quadratic).
    Flows are added and re-pointed through ``add`` and ``move_source`` to keep the index."""

    def __init__(self, element: etree._Element) -> None:
        self.element = element
        self.nodes = [c for c in element if is_bpmn(c) and local_name(c) in FLOW_NODES]
        self._out: dict[str | None, list[etree._Element]] = {}
        self._in: dict[str | None, list[etree._Element]] = {}
        for child in element:
            if is_bpmn(child, "sequenceFlow"):
                self.add(child)

    def add(self, flow: etree._Element) -> None:
        self._out.setdefault(flow.get("sourceRef"), []).append(flow)
        self._in.setdefault(flow.get("targetRef"), []).append(flow)

    def move_source(self, flow: etree._Element, source: str) -> None:
        self._out[flow.get("sourceRef")].remove(flow)
        flow.set("sourceRef", source)
        self._out.setdefault(source, []).append(flow)

    def outgoing(self, node_id: str) -> list[etree._Element]:
        return list(self._out.get(node_id, ()))

    def incoming(self, node_id: str) -> list[etree._Element]:
        return list(self._in.get(node_id, ()))


def _scopes(root: etree._Element) -> Iterator[etree._Element]:
    for element in root.iter(*(_q(s) for s in _SCOPES)):
        if element.get("triggeredByEvent", "false").strip().lower() != "true":
            yield element


def _add(parent: etree._Element, local: str, ids: _Ids, base: str, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, _q(local))
    element.set("id", ids.new(base))
    for key, value in attrs.items():
        element.set(key, value)
    element.set(SYNTHETIC, "true")
    return element


def _flow(parent: etree._Element, ids: _Ids, source: str, target: str) -> etree._Element:
    return _add(
        parent, "sequenceFlow", ids, f"{source}__to__{target}", sourceRef=source, targetRef=target
    )


def _condition(flow: etree._Element) -> etree._Element | None:
    for child in flow:
        if is_bpmn(child, "conditionExpression"):
            return child
    return None


def has_condition(flow: etree._Element) -> bool:
    cond = _condition(flow)
    return cond is not None and bool((cond.text or "").strip())


def _set_condition(flow: etree._Element, text: str) -> None:
    cond = _condition(flow)
    if cond is None:
        cond = etree.SubElement(flow, _q("conditionExpression"))
        cond.set(XSI_TYPE, "bpmn:tFormalExpression")
    cond.text = text


def normalize(root: etree._Element, source_name: str) -> None:
    """Rewrite one BPMN document in place (see the module docstring)."""
    ids = _Ids(root)
    for flow in root.iter(_q("sequenceFlow")):
        if not flow.get("id"):  # legal in BPMN, but SpiffWorkflow finds flows by id
            flow.set("id", ids.new(f"Flow_{flow.get('sourceRef')}_{flow.get('targetRef')}"))
    _strip_data(root)
    for scope in list(_scopes(root)):
        _links(scope, ids, source_name)
    for scope in list(_scopes(root)):
        _implicit_start_end(scope, ids)
    for scope_element in list(root.iter(*(_q(s) for s in (*_SCOPES, "adHocSubProcess")))):
        flows = _Scope(scope_element)
        for node in list(flows.nodes):
            _split(flows, node, ids)
            _gateway_defaults(flows, node)


def _strip_data(root: etree._Element) -> None:
    doomed = [n for n in root.iter() if is_bpmn(n) and local_name(n) in _DATA_ELEMENTS]
    # The placeholder properties modelers add as targets of data input associations.
    for n in root.iter(_q("property")):
        owner = n.getparent()
        if owner is not None and local_name(owner) in FLOW_NODES:
            doomed.append(n)
    for node in doomed:
        parent = node.getparent()
        if parent is not None:
            parent.remove(node)


def _link_name(event: etree._Element) -> str | None:
    for child in event:
        if is_bpmn(child, "linkEventDefinition"):
            name = (child.get("name") or event.get("name") or "").strip()
            return name
    return None


def _drop_link_definition(event: etree._Element) -> None:
    for child in list(event):
        if is_bpmn(child, "linkEventDefinition"):
            event.remove(child)


def _links(scope_element: etree._Element, ids: _Ids, source_name: str) -> None:
    scope = _Scope(scope_element)
    catches: dict[str, etree._Element] = {}
    for node in scope.nodes:
        name = _link_name(node) if is_bpmn(node, "intermediateCatchEvent") else None
        if name is None:
            continue
        if name in catches:
            raise DeploymentError(
                f"{source_name}: link catch events '{catches[name].get('id')}' and "
                f"'{node.get('id')}' share the link name '{name}'; a link name must be unique "
                "among the catch events of one process or subprocess"
            )
        catches[name] = node
    for node in scope.nodes:
        name = _link_name(node) if is_bpmn(node, "intermediateThrowEvent") else None
        if name is None:
            continue
        target = catches.get(name)
        if target is None:
            raise DeploymentError(
                f"{source_name}: link throw event '{node.get('id')}' goes to link '{name}', but "
                "no intermediate catch event of that link name is in the same process or "
                "subprocess"
            )
        _flow(scope_element, ids, str(node.get("id")), str(target.get("id")))
        _drop_link_definition(node)
    for node in catches.values():
        _drop_link_definition(node)


def _starts_implicitly(node: etree._Element) -> bool:
    name = local_name(node)
    if name in ("boundaryEvent", "startEvent"):
        return False
    if node.get("isForCompensation", "false").strip().lower() == "true":
        return False
    return node.get("triggeredByEvent", "false").strip().lower() != "true"


def _implicit_start_end(scope_element: etree._Element, ids: _Ids) -> None:
    scope = _Scope(scope_element)
    scope_id = str(scope_element.get("id"))
    names = {local_name(n) for n in scope.nodes}
    if "startEvent" not in names:
        start = _add(scope_element, "startEvent", ids, f"{scope_id}__start")
        sources = [
            n for n in scope.nodes if _starts_implicitly(n) and not scope.incoming(n.get("id", ""))
        ]
        for node in sources:
            scope.add(_flow(scope_element, ids, start.get("id", ""), node.get("id", "")))
        if not sources:
            end = _add(scope_element, "endEvent", ids, f"{scope_id}__end")
            _flow(scope_element, ids, start.get("id", ""), end.get("id", ""))
            return
    if "endEvent" not in names:
        sinks = [
            n
            for n in scope.nodes
            if local_name(n) != "boundaryEvent"
            and n.get("isForCompensation", "false").strip().lower() != "true"
            and n.get("triggeredByEvent", "false").strip().lower() != "true"
            and not scope.outgoing(n.get("id", ""))
        ]
        end = _add(scope_element, "endEvent", ids, f"{scope_id}__end")
        for node in sinks:
            _flow(scope_element, ids, node.get("id", ""), end.get("id", ""))


def _split(scope: _Scope, node: etree._Element, ids: _Ids) -> None:
    """Several outgoing flows (or a conditional one) from an activity or event: an explicit
    gateway after it."""
    name = local_name(node)
    if name in GATEWAYS or name == "startEvent":
        return
    node_id = str(node.get("id"))
    outgoing = scope.outgoing(node_id)
    conditional = any(has_condition(f) for f in outgoing)
    if len(outgoing) < 2 and not conditional:
        return
    default = node.get("default")
    kind = "inclusiveGateway" if conditional else "parallelGateway"
    attrs = {"default": default} if conditional and default else {}
    gateway = _add(scope.element, kind, ids, f"{node_id}__split", **attrs)
    gateway_id = str(gateway.get("id"))
    for flow in outgoing:
        scope.move_source(flow, gateway_id)
        if conditional and flow.get("id") != default and not has_condition(flow):
            _set_condition(flow, "${true}")
    if default:
        del node.attrib["default"]
    scope.add(_flow(scope.element, ids, node_id, gateway_id))


def _gateway_defaults(scope: _Scope, node: etree._Element) -> None:
    """A non-default flow without a condition out of an exclusive or inclusive gateway is taken
    as if its condition were true."""
    if local_name(node) not in ("exclusiveGateway", "inclusiveGateway"):
        return
    outgoing = scope.outgoing(str(node.get("id")))
    if len(outgoing) < 2:
        return
    default = node.get("default")
    for flow in outgoing:
        if flow.get("id") != default and not has_condition(flow):
            _set_condition(flow, "${true}")
