"""Every word of the known extension vocabularies is honoured, listed as ignored, or refused
naming the file, the element and the word: nothing is dropped in silence."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import DeploymentError, ProcessEngine
from engine.cli import conformance
from engine.deploy import vocabulary as v

#: Camunda 7's BPMN extension reference (docs.camunda.org, "Extension Attributes" and
#: "Extension Elements"), Camunda 8's zeebe elements as Camunda Modeler 5 writes them, and the
#: Activiti/Flowable words Camunda 7 shares.
CAMUNDA_7_ATTRIBUTES = [
    "assignee",
    "asyncAfter",
    "asyncBefore",
    "calledElementBinding",
    "calledElementVersion",
    "calledElementVersionTag",
    "calledElementTenantId",
    "candidateGroups",
    "candidateStarterGroups",
    "candidateStarterUsers",
    "candidateUsers",
    "caseBinding",
    "caseRef",
    "caseVersion",
    "caseTenantId",
    "class",
    "collection",
    "decisionRef",
    "decisionRefBinding",
    "decisionRefVersion",
    "decisionRefVersionTag",
    "decisionRefTenantId",
    "delegateExpression",
    "dueDate",
    "elementVariable",
    "errorCodeVariable",
    "errorMessageVariable",
    "escalationCodeVariable",
    "exclusive",
    "expression",
    "formHandlerClass",
    "formKey",
    "formRef",
    "formRefBinding",
    "formRefVersion",
    "followUpDate",
    "historyTimeToLive",
    "initiator",
    "isStartableInTasklist",
    "jobPriority",
    "mapDecisionResult",
    "priority",
    "resultVariable",
    "resource",
    "taskPriority",
    "topic",
    "type",
    "variableMappingClass",
    "variableMappingDelegateExpression",
    "variableName",
    "variableEvents",
    "versionTag",
]
CAMUNDA_7_ELEMENTS = [
    "connector",
    "connectorId",
    "constraint",
    "entry",
    "errorEventDefinition",
    "executionListener",
    "expression",
    "failedJobRetryTimeCycle",
    "field",
    "formData",
    "formField",
    "formProperty",
    "in",
    "inputOutput",
    "inputParameter",
    "list",
    "map",
    "out",
    "outputParameter",
    "potentialStarter",
    "properties",
    "property",
    "script",
    "string",
    "taskListener",
    "validation",
    "value",
]
ZEEBE_ELEMENTS = [
    "taskDefinition",
    "taskHeaders",
    "header",
    "ioMapping",
    "input",
    "output",
    "loopCharacteristics",
    "calledElement",
    "calledDecision",
    "subscription",
    "script",
    "userTask",
    "assignmentDefinition",
    "formDefinition",
    "taskSchedule",
    "priorityDefinition",
    "executionListeners",
    "executionListener",
    "taskListeners",
    "taskListener",
    "properties",
    "property",
    "userTaskForm",
    "versionTag",
    "adHoc",
    "linkedResources",
    "linkedResource",
]

C = "http://camunda.org/schema/1.0/bpmn"


def test_the_tables_cover_the_published_vocabularies() -> None:
    assert set(CAMUNDA_7_ATTRIBUTES) <= set(v.CAMUNDA_ATTRIBUTES)
    assert set(CAMUNDA_7_ELEMENTS) <= set(v.CAMUNDA_ELEMENTS)
    assert set(ZEEBE_ELEMENTS) <= set(v.ZEEBE_ELEMENTS)
    for table in (v.CAMUNDA_ATTRIBUTES, v.CAMUNDA_ELEMENTS, v.ZEEBE_ELEMENTS, v.LEGACY):
        for word, status in table.items():
            assert status == v.HONOURED or len(status) > 15, (word, status)


def _model(attribute: str = "", element: str = "", ns: str = C, prefix: str = "camunda") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:{prefix}="{ns}" id="d" targetNamespace="t">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="S" />
    <bpmn:userTask id="Word" {attribute}>
      <bpmn:extensionElements>{element}</bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:endEvent id="E" />
    <bpmn:sequenceFlow id="f1" sourceRef="S" targetRef="Word" />
    <bpmn:sequenceFlow id="f2" sourceRef="Word" targetRef="E" />
  </bpmn:process>
</bpmn:definitions>""".encode()


def _cases() -> list[tuple[str, str, str]]:
    out = [("attribute", w, s) for w, s in v.CAMUNDA_ATTRIBUTES.items() if s != v.HONOURED]
    out += [("element", w, s) for w, s in v.CAMUNDA_ELEMENTS.items() if s != v.HONOURED]
    return out


@pytest.mark.parametrize(("kind", "word", "status"), _cases())
def test_each_camunda_word_that_does_not_run_is_reported(
    tmp_path: Path, kind: str, word: str, status: str
) -> None:
    xml = (
        _model(f'camunda:{word}="x"')
        if kind == "attribute"
        else _model(element=f"<camunda:{word} />")
    )
    path = tmp_path / "words.bpmn"
    path.write_bytes(xml)
    eng = ProcessEngine("sqlite://")
    try:
        if v.is_ignored(status):
            eng.deploy(path)  # accepted...
            listed = conformance.ignored_words(path)  # ...and reported
            assert any(item.startswith(f"camunda:{word} (") for item in listed), listed
        else:
            with pytest.raises(DeploymentError) as err:
                eng.deploy(path)
            text = str(err.value)
            assert "words.bpmn" in text and "element 'Word'" in text, text
            assert f"camunda:{word}" in text and status in text, text
    finally:
        eng.close()


@pytest.mark.parametrize(
    ("ns", "prefix"),
    [
        (C, "camunda"),
        (v.ZEEBE_NS, "zeebe"),
        (v.ACTIVITI_NS, "activiti"),
        (v.FLOWABLE_NS, "flowable"),
    ],
)
def test_an_unknown_word_is_refused_in_every_vocabulary(
    eng: ProcessEngine, ns: str, prefix: str
) -> None:
    for xml in (
        _model(f'{prefix}:inventedAttribute="1"', ns=ns, prefix=prefix),
        _model(element=f"<{prefix}:inventedElement />", ns=ns, prefix=prefix),
    ):
        with pytest.raises(DeploymentError, match=rf"element 'Word': {prefix}:invented"):
            eng.deploy(xml)


def test_activiti_and_flowable_words_run_as_camunda_s(eng: ProcessEngine) -> None:
    seen: list[str] = []
    eng.register_handler("audit", lambda ctx: seen.append(f"{ctx.event}:{ctx.activity_id}"))
    for ns, prefix in ((v.ACTIVITI_NS, "activiti"), (v.FLOWABLE_NS, "flowable")):
        seen.clear()
        xml = _model(
            f'{prefix}:assignee="kermit"',
            f'<{prefix}:executionListener event="start" class="audit" />',
            ns=ns,
            prefix=prefix,
        ).replace(b'id="p"', f'id="p_{prefix}"'.encode())
        eng.deploy(xml)
        inst = eng.start(f"p_{prefix}")
        assert seen == ["start:Word"]  # fired once, as camunda:executionListener
        assert inst.waiting_at == ["Word"]


def test_history_time_to_live_is_honoured_not_listed_as_ignored(tmp_path: Path) -> None:
    # History cleanup reads it (engine.work.history_cleanup); deploy notes must not say otherwise.
    path = tmp_path / "ttl.bpmn"
    path.write_bytes(
        _model().replace(
            b'<bpmn:process id="p"', b'<bpmn:process camunda:historyTimeToLive="30" id="p"'
        )
    )
    assert conformance.ignored_words(path) == ()
    eng = ProcessEngine("sqlite://")
    try:
        eng.deploy(path)
    finally:
        eng.close()
