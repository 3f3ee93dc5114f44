"""What Spillway refuses at deploy time, and why, in words a modeler understands.

A BPMN file is checked before SpiffWorkflow parses it. Every element of an executable process
that the engine could not run as drawn is reported with the file, the element id and the reason,
all in one ``DeploymentError`` (``UnsupportedElements``, whose ``refusals`` keep the structure
for tools such as ``spillway conformance``). Nothing is dropped silently: an element is either
run, or documented as having no effect at run time (see ``docs/modeling.md``), or refused here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lxml import etree

from engine.bpmn import call_mappings, script_bindings
from engine.bpmn.namespaces import BPMN_NS, CAMUNDA_NS, camunda
from engine.core.errors import DeploymentError
from engine.deploy import compensation_model, rewrites, zeebe
from engine.deploy.listener_checks import listener_problem
from engine.deploy.mapping_checks import error_event_problem, mappings_problem
from engine.deploy.normalize import FLOW_NODES, is_bpmn, local_name
from engine.expressions import feel

#: How the element checks report: the element and the reason.
Refuse = Callable[[etree._Element, str], None]

#: Expression languages of conditions the safe evaluator reads.
_EXPRESSION_LANGUAGES = frozenset(
    {
        "",
        "juel",
        "jexl",
        "python",
        "http://www.w3.org/1999/xpath",  # BPMN's default, written by modelers without meaning it
        "http://www.omg.org/spec/bpmn/20100524/model",
    }
)


@dataclass(frozen=True)
class Refusal:
    """One element Spillway cannot run."""

    file: str
    process_id: str
    element_id: str
    reason: str

    @property
    def message(self) -> str:
        return f"{self.file}: element '{self.element_id}': {self.reason}"


class UnsupportedElements(DeploymentError):
    """The deployment holds elements Spillway cannot run; ``refusals`` lists each."""

    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = list(refusals)
        super().__init__(problems=[r.message for r in self.refusals])


def _flag(node: etree._Element, name: str) -> bool:
    return (node.get(name) or "").strip().lower() == "true"


def executable_processes(root: etree._Element) -> Iterator[etree._Element]:
    """Processes an engine runs: isExecutable true or missing (Camunda's default)."""
    for process in root.iter(f"{{{BPMN_NS}}}process"):
        if (process.get("isExecutable") or "true").strip().lower() != "false":
            yield process


def _owner(node: etree._Element) -> etree._Element:
    """The flow node (or process) an extension element belongs to."""
    current = node.getparent()
    while current is not None:
        if is_bpmn(current) and (
            local_name(current) in FLOW_NODES or local_name(current) in ("process", "sequenceFlow")
        ):
            return current
        current = current.getparent()
    return node


def _process_of(node: etree._Element) -> str:
    current: etree._Element | None = node
    while current is not None:
        if is_bpmn(current, "process"):
            return str(current.get("id"))
        current = current.getparent()
    return "-"


def collector(root: etree._Element, file: str, into: list[Refusal]) -> Refuse:
    """A ``Refuse`` that appends to ``into`` (refusals outside executable processes dropped:
    a descriptive process is not deployed)."""
    runnable = {str(p.get("id")) for p in executable_processes(root)}

    def refuse(node: etree._Element, reason: str) -> None:
        pid = _process_of(node)
        if pid in runnable or pid == "-":
            into.append(Refusal(file, pid, str(node.get("id") or local_name(node)), reason))

    return refuse


def check(root: etree._Element, file: str) -> list[Refusal]:
    """Every refusal in one document's executable processes."""
    refusals: list[Refusal] = []
    for process in executable_processes(root):
        pid = str(process.get("id"))

        def refuse(node: etree._Element, reason: str, pid: str = pid) -> None:
            refusals.append(Refusal(file, pid, str(node.get("id") or local_name(node)), reason))

        for node in process.iter():
            if not isinstance(node.tag, str):
                continue
            if is_bpmn(node):
                _check_bpmn(node, refuse)
            elif node.tag.startswith(f"{{{CAMUNDA_NS}}}"):
                _checkcamunda(node, refuse)
            elif zeebe.is_zeebe(node) and local_name(node) in ("executionListener", "taskListener"):
                reason = zeebe.zeebe_listener_problem(node)
                if reason is not None:
                    refuse(_owner(node), reason)
    return refusals


def _check_bpmn(node: etree._Element, refuse: Refuse) -> None:
    name = local_name(node)
    compensation_model.check(node, refuse)  # what of compensation runs: docs/modeling.md
    if name == "complexGateway":
        problem = rewrites.pass_through_problem(node)  # a pass-through runs, see rewrites
        if problem is not None:
            refuse(
                node,
                f"complex gateways that join or split are not supported ({problem}; their "
                "activation rule cannot be evaluated); draw an inclusive or a parallel gateway "
                "instead",
            )
    elif name == "scriptTask":
        reason = script_bindings.script_task_problem(node)  # JavaScript runs; Python if allowed
        if reason is not None:
            refuse(node, reason)
    elif name in ("conditionExpression", "condition", "loopCondition"):
        language = (node.get("language") or "").strip().lower()
        if language not in _EXPRESSION_LANGUAGES and not feel.is_feel_language(language):
            refuse(
                _owner(node),
                f"a condition in {node.get('language')} cannot be evaluated; write it as an "
                "expression such as ${amount > 100} (or in FEEL)",
            )
    elif name == "callActivity":
        called = (node.get("calledElement") or "").strip()
        if node.get(camunda("caseRef")):
            refuse(node, "calling a CMMN case is not supported")
        elif "${" in called or "#{" in called:
            refuse(
                node,
                f"calledElement '{called}' is an expression; the called process must be named "
                "so it can be deployed with the caller",
            )
    elif name == "standardLoopCharacteristics":
        # Without condition or maximum the activity runs once (engine.deploy.rewrites).
        maximum = (node.get("loopMaximum") or "").strip()
        if maximum and not maximum.isdigit():
            refuse(
                _owner(node),
                f"loopMaximum '{maximum}' is not a whole number; write the number of iterations",
            )
    elif name == "multiInstanceLoopCharacteristics":
        problem = rewrites.collection_problem(node)
        if problem:
            refuse(_owner(node), problem)


def _checkcamunda(node: etree._Element, refuse: Refuse) -> None:
    name = etree.QName(node).localname
    if name in ("executionListener", "taskListener"):
        reason = listener_problem(node, _owner(node))  # they run: engine.bpmn.listeners
        if reason is not None:
            refuse(_owner(node), reason)
    elif name == "script":
        parent = node.getparent()
        if parent is not None and etree.QName(parent).localname in (
            "executionListener",
            "taskListener",
        ):
            return  # checked with its listener
        reason = script_bindings.mapping_script_problem(node)  # inline JavaScript or Python
        if reason is not None:
            refuse(_owner(node), reason)
    elif name == "inputOutput":
        parent = node.getparent()
        if parent is None or etree.QName(parent).localname != "connector":
            reason = mappings_problem(node, _owner(node))  # see docs/modeling.md
            if reason is not None:
                refuse(_owner(node), reason)
    elif name in ("in", "out"):
        reason = call_mappings.problem(node)  # runs as in Camunda 7, see docs/modeling.md
        if reason is not None:
            refuse(_owner(node), reason)
    elif name == "errorEventDefinition":
        owner = _owner(node)
        if (owner.get(camunda("type")) or "").strip() == "external":
            reason = error_event_problem(node)  # evaluated on completion, see docs/modeling.md
            if reason is not None:
                refuse(owner, reason)
        else:
            # Camunda 7 reads it only on external tasks and ignores it elsewhere.
            refuse(
                owner,
                "camunda:errorEventDefinition applies only to external tasks "
                '(camunda:type="external"); Camunda 7 ignores it here, so it would never throw',
            )
