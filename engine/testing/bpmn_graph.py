"""The graph of a BPMN document as coverage and failure messages need it: every flow node and
sequence flow of each process (embedded subprocesses included), read from the XML the user
deployed (the ids they drew), with where boundary events are attached and which nodes are wait
states.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from engine.core.errors import EngineError
from engine.core.values import ProcessInstance
from engine.deploy import bpmnxml

if TYPE_CHECKING:
    from engine.engine import ProcessEngine

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPILLWAY_NS = "urn:spillway:bpmn"

#: The BPMN elements that are flow nodes (what a token can be at).
FLOW_NODES = frozenset(
    {
        "task",
        "serviceTask",
        "userTask",
        "manualTask",
        "scriptTask",
        "businessRuleTask",
        "sendTask",
        "receiveTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
_CONTAINERS = frozenset({"subProcess", "transaction", "adHocSubProcess"})
#: Where a token rests until something outside the engine acts (besides external tasks).
_WAIT_TYPES = frozenset(
    {"userTask", "manualTask", "receiveTask", "intermediateCatchEvent", "eventBasedGateway"}
)


@dataclass(frozen=True)
class Node:
    id: str
    type: str  # the BPMN element's local name, e.g. "userTask"
    name: str | None
    wait_state: bool


@dataclass(frozen=True)
class Flow:
    id: str
    source: str
    target: str


@dataclass
class ProcessGraph:
    """One process of a document: its flow nodes and sequence flows, in document order."""

    process_id: str
    name: str | None
    nodes: dict[str, Node] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    attached: dict[str, list[str]] = field(default_factory=dict)  # activity -> boundary ids

    def flow_ids(self, edges: Iterable[tuple[str, str]]) -> set[str]:
        """The sequence flows named by (source, target) pairs; a pair no flow joins is
        ignored, and two flows joining the same pair are both taken."""
        wanted = set(edges)
        return {f.id for f in self.flows.values() if (f.source, f.target) in wanted}

    def outgoing(self, node_id: str) -> list[Flow]:
        return [f for f in self.flows.values() if f.source == node_id]

    def nearest_waits(self, starts: Iterable[str], skip: set[str]) -> list[tuple[str, int, str]]:
        """Wait states a token at ``starts`` could reach without passing another wait state:
        (wait id, steps, the start it is nearest to), nearest first; ids in ``skip`` are left
        out (but not crossed either)."""
        found: dict[str, tuple[int, str]] = {}
        for start in starts:
            seen = {start}
            queue = deque([(start, 0)])
            while queue:
                node_id, steps = queue.popleft()
                nexts = [f.target for f in self.outgoing(node_id)]
                nexts += self.attached.get(node_id, [])
                for target in nexts:
                    if target in seen or target not in self.nodes:
                        continue
                    seen.add(target)
                    if self.nodes[target].wait_state:
                        if target not in skip and (
                            target not in found or found[target][0] > steps + 1
                        ):
                            found[target] = (steps + 1, start)
                        continue
                    queue.append((target, steps + 1))
        return sorted(((k, s, frm) for k, (s, frm) in found.items()), key=lambda x: (x[1], x[0]))


def read_graphs(content: bytes, name: str = "<bytes>") -> dict[str, ProcessGraph]:
    """Every process of a BPMN document, by process id."""
    root = bpmnxml.parse_xml(bpmnxml.Source(name, content))
    graphs: dict[str, ProcessGraph] = {}
    for element in root.iter(f"{{{BPMN_NS}}}process"):
        graph = ProcessGraph(str(element.get("id")), element.get("name"))
        _read(element, graph)
        graphs[graph.process_id] = graph
    return graphs


def _read(container: etree._Element, graph: ProcessGraph) -> None:
    for child in container:
        if not isinstance(child.tag, str) or not child.tag.startswith(f"{{{BPMN_NS}}}"):
            continue
        local = etree.QName(child).localname
        element_id = child.get("id")
        if element_id is None:
            continue
        if local == "sequenceFlow":
            graph.flows[element_id] = Flow(
                element_id, str(child.get("sourceRef")), str(child.get("targetRef"))
            )
        elif local in FLOW_NODES:
            graph.nodes[element_id] = Node(
                element_id, local, child.get("name"), _is_wait_state(child, local)
            )
            if local == "boundaryEvent" and child.get("attachedToRef"):
                graph.attached.setdefault(str(child.get("attachedToRef")), []).append(element_id)
            if local in _CONTAINERS:
                _read(child, graph)


def _is_wait_state(element: etree._Element, local: str) -> bool:
    if local in _WAIT_TYPES:
        return True
    if local in ("serviceTask", "sendTask", "businessRuleTask"):
        return (
            element.get(f"{{{CAMUNDA_NS}}}type") == "external"
            or element.get(f"{{{SPILLWAY_NS}}}topic") is not None
        )
    return False


def process_graph(engine: ProcessEngine, instance: ProcessInstance) -> ProcessGraph | None:
    """The graph of the process an instance runs, read from the document it was deployed
    from; None when that cannot be read (its definition or document is gone)."""
    try:
        definition = engine.store.definition(instance.definition_id)
        if definition is None:
            return None
        for row in engine.store.resources(definition["deployment_id"]):
            if row["name"] == definition["resource"]:
                return read_graphs(bytes(row["content"]), row["name"]).get(instance.process_key)
    except EngineError:
        return None
    return None
