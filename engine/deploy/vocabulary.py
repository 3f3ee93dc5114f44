"""The extension vocabularies Spillway knows, and what it does with each word.

Every ``camunda:``, ``zeebe:``, ``activiti:`` and ``flowable:`` element or attribute of a deployed
file is one of:

- ``HONOURED``: it runs (the module named beside it reads it);
- ``IGNORED``: it changes nothing at run time here (modeler metadata, forms for a task list,
  authorisations); deploy accepts it and ``spillway conformance`` lists it as ignored;
- a refusal: deploy fails naming the file, the element and the word, with the reason.

A word not in these tables is refused too ("not part of Spillway's vocabulary"): nothing is
dropped in silence. ``scan`` walks a document; ``translate_legacy`` first reads Activiti's and
Flowable's words that mean what Camunda 7's do as Camunda 7's (Camunda 7 forked Activiti 5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from lxml import etree

from engine.bpmn.namespaces import ACTIVITI_NS, BPMN_NS, CAMUNDA_NS, FLOWABLE_NS
from engine.deploy.normalize import is_bpmn, local_name

ZEEBE_NS: Final = "http://camunda.org/schema/zeebe/1.0"
PREFIXES: Final = {
    CAMUNDA_NS: "camunda",
    ZEEBE_NS: "zeebe",
    ACTIVITI_NS: "activiti",
    FLOWABLE_NS: "flowable",
}

HONOURED: Final = "honoured"
IGNORED: Final = "ignored"

Refuse = Callable[[etree._Element, str], None]

_FORMS = "a form for a task list; Spillway has no task list UI (the form key is kept)"
_META = "modeler metadata"
_AUTH = "who may start the process (authorisation); Spillway has no users"

#: Camunda 7 attributes (on BPMN elements): word -> HONOURED, IGNORED or the refusal reason.
CAMUNDA_ATTRIBUTES: Final[dict[str, str]] = {
    "assignee": HONOURED,  # user tasks (UserTask records)
    "candidateUsers": HONOURED,
    "candidateGroups": HONOURED,
    "dueDate": HONOURED,
    "followUpDate": HONOURED,
    "priority": HONOURED,
    "formKey": HONOURED,
    "asyncBefore": HONOURED,  # engine.deploy.parser
    "asyncAfter": HONOURED,
    "async": HONOURED,
    "class": HONOURED,
    "delegateExpression": HONOURED,
    "expression": HONOURED,
    "resultVariable": HONOURED,
    "type": HONOURED,  # "external" (other values are refused by the parser checks)
    "topic": HONOURED,
    "collection": HONOURED,  # engine.deploy.rewrites
    "elementVariable": HONOURED,
    "decisionRef": HONOURED,  # engine.bpmn.decisions
    "mapDecisionResult": HONOURED,
    "errorMessage": HONOURED,  # bpmn:error's message (engine.bpmn.mappings)
    "resource": HONOURED,  # scripts: refused with their reason (engine.bpmn.script_bindings)
    "calledElementBinding": HONOURED,  # "latest"/"deployment": the deployment's own process
    "decisionRefBinding": HONOURED,
    "historyTimeToLive": HONOURED,  # engine.work.history_cleanup
    "versionTag": HONOURED,  # fetchAndLock's processDefinitionVersionTag, the REST DTOs
    "diagramRelationId": IGNORED + ": " + _META,
    "modelerTemplate": IGNORED + ": " + _META,
    "modelerTemplateVersion": IGNORED + ": " + _META,
    "isStartableInTasklist": IGNORED + ": " + _FORMS,
    "formHandlerClass": IGNORED + ": " + _FORMS,
    "formRef": IGNORED + ": " + _FORMS,
    "formRefBinding": IGNORED + ": " + _FORMS,
    "formRefVersion": IGNORED + ": " + _FORMS,
    "candidateStarterUsers": IGNORED + ": " + _AUTH,
    "candidateStarterGroups": IGNORED + ": " + _AUTH,
    "exclusive": IGNORED + ": jobs of one instance never run at the same time here",
    "jobPriority": IGNORED + ": due jobs run oldest first",
    "taskPriority": IGNORED + ": external tasks are fetched oldest first",
    "initiator": IGNORED + ": Spillway has no users to name the initiator",
    "variableName": IGNORED + ": a conditional event's condition is evaluated whatever "
    "variable changed",
    "variableEvents": IGNORED + ": a conditional event's condition is evaluated whatever "
    "variable changed",
    "calledElementVersion": "calling a fixed version is not supported: the deployment's "
    "own called process runs",
    "calledElementVersionTag": "calling by version tag is not supported: the deployment's "
    "own called process runs",
    "calledElementTenantId": IGNORED + ": Spillway has no tenants; the deployment's own "
    "called process runs",
    "decisionRefVersion": "a fixed decision version is not supported",
    "decisionRefVersionTag": "a decision version tag is not supported",
    "decisionRefTenantId": IGNORED + ": Spillway has no tenants; the deployment's own "
    "decision is evaluated",
    "caseRef": "calling a CMMN case is not supported",
    "caseBinding": "calling a CMMN case is not supported",
    "caseVersion": "calling a CMMN case is not supported",
    "caseTenantId": "calling a CMMN case is not supported",
    "variableMappingClass": "a Java variable mapping class cannot run; write camunda:in and "
    "camunda:out mappings",
    "variableMappingDelegateExpression": "a Java variable mapping cannot run; write camunda:in "
    "and camunda:out mappings",
    "errorCodeVariable": "storing the caught error code in a variable is not supported; pass "
    "it in the error's variables",
    "errorMessageVariable": "storing the caught error message in a variable is not supported; "
    "pass it in the error's variables",
    "escalationCodeVariable": "storing the caught escalation code in a variable is not supported",
}

#: Camunda 7 extension elements.
CAMUNDA_ELEMENTS: Final[dict[str, str]] = {
    "executionListener": HONOURED,  # engine.bpmn.listeners
    "taskListener": HONOURED,
    "field": HONOURED,  # TaskContext.properties
    "string": HONOURED,
    "expression": HONOURED,
    "script": HONOURED,  # JavaScript, JUEL, Python when allowed (others refused)
    "inputOutput": HONOURED,  # engine.bpmn.mappings
    "inputParameter": HONOURED,
    "outputParameter": HONOURED,
    "list": HONOURED,
    "map": HONOURED,
    "entry": HONOURED,
    "value": HONOURED,
    "in": HONOURED,  # engine.bpmn.call_mappings
    "out": HONOURED,
    "properties": HONOURED,  # TaskContext.properties
    "property": HONOURED,
    "failedJobRetryTimeCycle": HONOURED,  # the retry policy
    "errorEventDefinition": HONOURED,  # external tasks
    "formData": IGNORED + ": " + _FORMS,
    "formField": IGNORED + ": " + _FORMS,
    "formProperty": IGNORED + ": " + _FORMS,
    "validation": IGNORED + ": " + _FORMS,
    "constraint": IGNORED + ": " + _FORMS,
    "potentialStarter": IGNORED + ": " + _AUTH,
    "connector": "Camunda Connect connectors (camunda:connector) cannot run; call the "
    "service from a handler",
    "connectorId": "Camunda Connect connectors (camunda:connector) cannot run",
}

#: Camunda 8 extension elements (``engine.deploy.zeebe``) and the attributes each may carry.
ZEEBE_ELEMENTS: Final[dict[str, str]] = {
    "taskDefinition": HONOURED,
    "taskHeaders": HONOURED,
    "header": HONOURED,
    "ioMapping": HONOURED,
    "input": HONOURED,
    "output": HONOURED,
    "loopCharacteristics": HONOURED,
    "calledElement": HONOURED,
    "calledDecision": HONOURED,
    "subscription": HONOURED,
    "script": HONOURED,
    "userTask": HONOURED,
    "assignmentDefinition": HONOURED,
    "formDefinition": HONOURED,
    "taskSchedule": HONOURED,
    "priorityDefinition": HONOURED,
    "executionListeners": HONOURED,
    "executionListener": HONOURED,
    "taskListeners": HONOURED,
    "taskListener": HONOURED,
    "properties": HONOURED,
    "property": HONOURED,
    "userTaskForm": IGNORED + ": " + _FORMS,
    "versionTag": IGNORED + ": " + _META,
    "adHoc": "ad-hoc subprocesses driven by a job worker (AI agents) are not supported",
    "linkedResources": "linked resources (RPA scripts, AI tools) are not supported",
    "linkedResource": "linked resources (RPA scripts, AI tools) are not supported",
}
ZEEBE_ELEMENT_ATTRIBUTES: Final[dict[str, frozenset[str]]] = {
    "taskDefinition": frozenset({"type", "retries"}),
    "header": frozenset({"key", "value"}),
    "input": frozenset({"source", "target"}),
    "output": frozenset({"source", "target"}),
    "loopCharacteristics": frozenset(
        {"inputCollection", "inputElement", "outputCollection", "outputElement"}
    ),
    "calledElement": frozenset(
        {"processId", "propagateAllChildVariables", "propagateAllParentVariables", "bindingType"}
    ),
    "calledDecision": frozenset({"decisionId", "resultVariable", "bindingType"}),
    "subscription": frozenset({"correlationKey"}),
    "script": frozenset({"expression", "resultVariable"}),
    "assignmentDefinition": frozenset({"assignee", "candidateGroups", "candidateUsers"}),
    "formDefinition": frozenset({"formKey", "formId", "externalReference", "bindingType"}),
    "taskSchedule": frozenset({"dueDate", "followUpDate"}),
    "priorityDefinition": frozenset({"priority"}),
    "executionListener": frozenset({"eventType", "type", "retries"}),
    "taskListener": frozenset({"eventType", "type", "retries"}),
    "property": frozenset({"name", "value"}),
    "userTaskForm": frozenset({"id"}),
    "versionTag": frozenset({"value"}),
}
#: Camunda 8 attributes on BPMN elements.
ZEEBE_ATTRIBUTES: Final[dict[str, str]] = {
    "modelerTemplate": IGNORED + ": " + _META,
    "modelerTemplateVersion": IGNORED + ": " + _META,
    "modelerTemplateIcon": IGNORED + ": " + _META,
}

#: Activiti / Flowable words read as the Camunda 7 word of the same name.
LEGACY_AS_CAMUNDA: Final = frozenset(
    {
        "assignee",
        "candidateUsers",
        "candidateGroups",
        "dueDate",
        "priority",
        "formKey",
        "class",
        "delegateExpression",
        "expression",
        "resultVariable",
        "collection",
        "elementVariable",
        "calledElementBinding",
        "exclusive",
        "initiator",
        "candidateStarterUsers",
        "candidateStarterGroups",
        "async",
        "executionListener",
        "taskListener",
        "field",
        "string",
        "in",
        "out",
        "failedJobRetryTimeCycle",
        "formProperty",
        "potentialStarter",
    }
)
#: Activiti / Flowable words with a meaning of their own.
LEGACY: Final[dict[str, str]] = {
    "topic": HONOURED,  # Flowable external workers
    "type": HONOURED,  # "external-worker" (others refused by the parser checks)
    "triggerable": "triggerable service tasks (flowable:triggerable) are not supported",
    "skipExpression": "skip expressions are not supported",
    "decisionTableReferenceKey": "a decision task by flowable:decisionTableReferenceKey is not "
    "supported; use a business rule task with camunda:decisionRef",
    "category": IGNORED + ": " + _META,
    "historyLevel": IGNORED + ": " + _META,
}


@dataclass(frozen=True)
class Word:
    """One extension element or attribute found in a document."""

    owner_id: str
    word: str  # "camunda:historyTimeToLive", "zeebe:userTaskForm"
    kind: str  # "attribute" or "element"
    status: str  # HONOURED, "ignored: <why>" or the refusal reason


_USER_TASK = f"{{{BPMN_NS}}}userTask"
_USER_TASK_DEFINITION = (
    IGNORED + ": Camunda 8 gives a job-worker user task the job type io.camunda.zeebe:userTask "
    "whatever its task definition says; the task waits for complete_task"
)


def _owner(node: etree._Element) -> etree._Element:
    current: etree._Element | None = node
    while current is not None and not (is_bpmn(current) and current.get("id")):
        current = current.getparent()
    return node if current is None else current


def _status(ns: str, local: str, kind: str, parent: etree._Element | None) -> str:
    if ns == CAMUNDA_NS:
        table = CAMUNDA_ATTRIBUTES if kind == "attribute" else CAMUNDA_ELEMENTS
        found = table.get(local)
    elif ns == ZEEBE_NS:
        found = (ZEEBE_ATTRIBUTES if kind == "attribute" else ZEEBE_ELEMENTS).get(local)
        if local == "taskDefinition" and parent is not None and _owner(parent).tag == _USER_TASK:
            found = _USER_TASK_DEFINITION
    else:
        found = HONOURED if local in LEGACY_AS_CAMUNDA else LEGACY.get(local)
    if found is None:
        prefix = PREFIXES.get(ns, ns)
        return f"{prefix}:{local} is not part of Spillway's vocabulary, so it cannot run"
    return found


def words(root: etree._Element) -> Iterator[Word]:
    """Every extension element and attribute of the four vocabularies in ``root``."""
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        ns = etree.QName(node).namespace or ""
        if ns in PREFIXES:
            local = etree.QName(node).localname
            status = _status(ns, local, "element", node.getparent())
            yield Word(
                str(_owner(node).get("id") or "-"), f"{PREFIXES[ns]}:{local}", "element", status
            )
            if ns == ZEEBE_NS and local in ZEEBE_ELEMENT_ATTRIBUTES:
                allowed = ZEEBE_ELEMENT_ATTRIBUTES[local]
                for attribute in node.attrib:
                    name = etree.QName(attribute).localname
                    if name not in allowed and not etree.QName(attribute).namespace:
                        yield Word(
                            str(_owner(node).get("id") or "-"),
                            f"zeebe:{local} {name}",
                            "attribute",
                            f"attribute '{name}' of zeebe:{local} is not supported",
                        )
        for attribute in node.attrib:
            qname = etree.QName(attribute)
            if qname.namespace in PREFIXES and ns not in PREFIXES:
                status = _status(qname.namespace, qname.localname, "attribute", node)
                owner = node if (is_bpmn(node) and node.get("id")) else _owner(node)
                yield Word(
                    str(owner.get("id") or local_name(node)),
                    f"{PREFIXES[qname.namespace]}:{qname.localname}",
                    "attribute",
                    status,
                )


def is_ignored(status: str) -> bool:
    return status.startswith(IGNORED)


def scan(root: etree._Element, refuse: Refuse) -> list[Word]:
    """Refuse every word that cannot run; the ignored ones are returned."""
    ignored: list[Word] = []
    by_id = {n.get("id"): n for n in root.iter() if isinstance(n.tag, str) and n.get("id")}
    for word in words(root):
        if word.status == HONOURED:
            continue
        if is_ignored(word.status):
            ignored.append(word)
            continue
        node = by_id.get(word.owner_id, root)
        refuse(node, f"{word.word} ({word.kind}): {word.status}")
    return ignored


def translate_legacy(root: etree._Element) -> None:
    """Activiti's and Flowable's words that mean what Camunda 7's do become Camunda 7's (the
    originals stay, so the report names them as written)."""
    elements: list[etree._Element] = []
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        for attribute, value in list(node.attrib.items()):
            qname = etree.QName(attribute)
            legacy = qname.namespace in (ACTIVITI_NS, FLOWABLE_NS)
            if legacy and qname.localname in LEGACY_AS_CAMUNDA:
                target = "asyncBefore" if qname.localname == "async" else qname.localname
                if node.get(f"{{{CAMUNDA_NS}}}{target}") is None:
                    node.set(f"{{{CAMUNDA_NS}}}{target}", value)
        qname = etree.QName(node)
        if qname.namespace in (ACTIVITI_NS, FLOWABLE_NS) and qname.localname in LEGACY_AS_CAMUNDA:
            parent = node.getparent()
            if parent is not None and etree.QName(parent).namespace not in (
                ACTIVITI_NS,
                FLOWABLE_NS,
            ):
                elements.append(node)
    for node in elements:
        parent = node.getparent()
        if parent is not None:
            parent.append(_as_camunda(node))


def _as_camunda(node: etree._Element) -> etree._Element:
    if not isinstance(node.tag, str):
        return etree.Element(f"{{{BPMN_NS}}}documentation")
    ns = etree.QName(node).namespace
    tag = (
        f"{{{CAMUNDA_NS}}}{etree.QName(node).localname}"
        if ns in (ACTIVITI_NS, FLOWABLE_NS)
        else node.tag
    )
    copy = etree.Element(tag, dict(node.attrib))
    copy.text = node.text
    for child in node:
        copy.append(_as_camunda(child))
    return copy
