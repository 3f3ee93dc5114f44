"""Camunda 8 (zeebe) models, construct by construct, as Camunda Modeler 5 writes them."""

from __future__ import annotations

import html
import itertools
from typing import Any

import pytest

from engine import CorrelationError, DeploymentError, EngineError, ProcessEngine
from engine.core.values import TaskContext
from engine.testing import ManualClock, advance_and_run

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:modeler="http://camunda.org/schema/modeler/1.0" id="Definitions_1" '
    'targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler" '
    'exporterVersion="5.31.0" modeler:executionPlatform="Camunda Cloud" '
    'modeler:executionPlatformVersion="8.6.0">\n'
)


def model(*elements: str, pid: str = "p", extra: str = "") -> bytes:
    """start -> elements... -> end, flows between consecutive elements (by their ids)."""
    ids = ["StartEvent_1"] + [e.split('id="', 1)[1].split('"', 1)[0] for e in elements]
    ids.append("EndEvent_1")
    flows = "".join(
        f'<bpmn:sequenceFlow id="Flow_{n}" sourceRef="{a}" targetRef="{b}" />'
        for n, (a, b) in enumerate(itertools.pairwise(ids))
    )
    body = (
        '<bpmn:startEvent id="StartEvent_1" />'
        + "".join(elements)
        + '<bpmn:endEvent id="EndEvent_1" />'
        + flows
    )
    return (
        f'{HEAD}<bpmn:process id="{pid}" isExecutable="true">{body}</bpmn:process>'
        f"{extra}</bpmn:definitions>"
    ).encode()


def task(task_id: str, job_type: str, ext: str = "", tag: str = "serviceTask") -> str:
    return (
        f'<bpmn:{tag} id="{task_id}"><bpmn:extensionElements>'
        f'<zeebe:taskDefinition type="{job_type}" />{ext}</bpmn:extensionElements></bpmn:{tag}>'
    )


def test_task_definition_headers_and_io_mapping(eng: ProcessEngine) -> None:
    seen: list[TaskContext] = []

    def quote(ctx: TaskContext) -> dict[str, Any]:
        seen.append(ctx)
        return {"result": {"price": ctx.variables["net"] * 2}}

    eng.register_handler("quote", quote)
    ext = (
        '<zeebe:taskHeaders><zeebe:header key="carrier" value="DHL" /></zeebe:taskHeaders>'
        "<zeebe:ioMapping>"
        '<zeebe:input source="=order.amount + 1" target="net" />'
        '<zeebe:input source="static text" target="note" />'
        '<zeebe:output source="=result.price" target="price" />'
        "</zeebe:ioMapping>"
    )
    eng.deploy(model(task("Quote", "quote", ext)))
    done = eng.start("p", {"order": {"amount": 20}})
    assert done.state == "completed"
    assert seen[0].properties == {"carrier": "DHL"}
    assert seen[0].variables["net"] == 21 and seen[0].variables["note"] == "static text"
    assert done.variables["price"] == 42
    assert "net" not in done.variables  # an input mapping is local to the task


def test_retries_count_attempts_as_in_camunda_8(eng: ProcessEngine, clock: ManualClock) -> None:
    calls: list[int] = []

    def flaky(ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        raise RuntimeError("down")

    eng.register_handler("flaky", flaky)
    xml = model(task("Call", "flaky")).replace(b'type="flaky"', b'type="flaky" retries="2"')
    eng.deploy(xml)
    inst = eng.start("p")
    [job] = eng.jobs(inst.id)
    assert job.retries_left == 1  # retries="2": two attempts in all, as Zeebe counts them
    advance_and_run(clock, eng, 3600)
    assert len(calls) == 2
    assert eng.get_instance(inst.id).state == "incident"


def test_unregistered_job_type_fails_deploy_naming_it(eng: ProcessEngine) -> None:
    with pytest.raises(DeploymentError, match="task 'Call' calls handler 'nobody'"):
        eng.deploy(model(task("Call", "nobody")))


def test_feel_job_type_chooses_the_handler_when_reached(eng: ProcessEngine) -> None:
    eng.register_handler("fast-lane", lambda ctx: {"lane": "fast"})
    eng.deploy(model(task("Route", "=&quot;fast-&quot; + kind")))
    assert eng.start("p", {"kind": "lane"}).variables["lane"] == "fast"


def test_feel_conditions_on_gateway_flows(eng: ProcessEngine) -> None:
    eng.register_handler("big", lambda ctx: {"path": "big"})
    eng.register_handler("small", lambda ctx: {"path": "small"})
    body = (
        '<bpmn:startEvent id="S" /><bpmn:exclusiveGateway id="G" default="toSmall" />'
        + task("Big", "big")
        + task("Small", "small")
        + '<bpmn:endEvent id="E1" /><bpmn:endEvent id="E2" />'
        '<bpmn:sequenceFlow id="f0" sourceRef="S" targetRef="G" />'
        '<bpmn:sequenceFlow id="toBig" sourceRef="G" targetRef="Big">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
        "=amount &gt; 100 and some i in items satisfies i.fragile"
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="toSmall" sourceRef="G" targetRef="Small" />'
        '<bpmn:sequenceFlow id="f3" sourceRef="Big" targetRef="E1" />'
        '<bpmn:sequenceFlow id="f4" sourceRef="Small" targetRef="E2" />'
    )
    process = f'<bpmn:process id="g" isExecutable="true">{body}</bpmn:process>'
    eng.deploy(f"{HEAD}{process}</bpmn:definitions>".encode())
    fragile = [{"fragile": True}]
    assert eng.start("g", {"amount": 150, "items": fragile}).variables["path"] == "big"
    assert eng.start("g", {"amount": 50, "items": fragile}).variables["path"] == "small"
    # An unknown variable is null in Camunda 8's FEEL: the condition does not hold.
    assert eng.start("g", {"items": fragile}).variables["path"] == "small"


def test_multi_instance_with_input_and_output_collections(eng: ProcessEngine) -> None:
    eng.register_handler("pack", lambda ctx: {"label": f"L-{ctx.variables['item']['sku']}"})
    mi = (
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true"><bpmn:extensionElements>'
        '<zeebe:loopCharacteristics inputCollection="=order.items" inputElement="item" '
        'outputCollection="labels" outputElement="={sku: item.sku, label: label}" />'
        "</bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics>"
    )
    xml = model(task("Pack", "pack")).replace(
        b"</bpmn:serviceTask>", mi.encode() + b"</bpmn:serviceTask>"
    )
    eng.deploy(xml)
    done = eng.start("p", {"order": {"items": [{"sku": "a"}, {"sku": "b"}]}})
    assert done.variables["labels"] == [
        {"sku": "a", "label": "L-a"},
        {"sku": "b", "label": "L-b"},
    ]
    assert not [k for k in done.variables if k.startswith("spillway") or k == "item"]


@pytest.mark.parametrize(("propagate", "expected"), [("true", True), ("false", False)])
def test_called_element_and_child_variables(
    eng: ProcessEngine, propagate: str, expected: bool
) -> None:
    eng.register_handler(
        "child-work", lambda ctx: {"child_only": 1, "total": ctx.variables["n"] * 3}
    )
    child = model(task("Work", "child-work"), pid="child")
    call = (
        '<bpmn:callActivity id="Call"><bpmn:extensionElements>'
        f'<zeebe:calledElement processId="child" propagateAllChildVariables="{propagate}" />'
        '<zeebe:ioMapping><zeebe:output source="=total" target="result" /></zeebe:ioMapping>'
        "</bpmn:extensionElements></bpmn:callActivity>"
    )
    eng.deploy([child, model(call, pid="parent")])  # type: ignore[list-item]
    done = eng.start("parent", {"n": 2})
    assert done.state == "completed" and done.variables["result"] == 6
    assert ("child_only" in done.variables) is expected


def test_message_catch_with_correlation_key(eng: ProcessEngine) -> None:
    catch = (
        '<bpmn:intermediateCatchEvent id="Wait">'
        '<bpmn:messageEventDefinition id="Def_1" messageRef="Msg" /></bpmn:intermediateCatchEvent>'
    )
    extra = (
        '<bpmn:message id="Msg" name="paid"><bpmn:extensionElements>'
        '<zeebe:subscription correlationKey="=orderId" /></bpmn:extensionElements></bpmn:message>'
    )
    eng.deploy(model(catch, extra=extra))
    a = eng.start("p", {"orderId": "A"})
    b = eng.start("p", {"orderId": "B"})
    eng.correlate_message("paid", {"amount": 5}, correlation={"orderId": "B"})
    assert eng.get_instance(b.id).state == "completed"
    assert eng.get_instance(b.id).variables["amount"] == 5
    assert eng.get_instance(a.id).waiting_at == ["Wait"]


def _keyed(expression: str) -> bytes:
    catch = (
        '<bpmn:intermediateCatchEvent id="Wait">'
        '<bpmn:messageEventDefinition id="Def_1" messageRef="Msg" /></bpmn:intermediateCatchEvent>'
    )
    extra = (
        '<bpmn:message id="Msg" name="paid"><bpmn:extensionElements>'
        f'<zeebe:subscription correlationKey="{html.escape(expression)}" />'
        "</bpmn:extensionElements>"
        "</bpmn:message>"
    )
    return model(catch, extra=extra)


@pytest.mark.parametrize(
    ("expression", "variables", "key"),
    [
        ("=order.id", {"order": {"id": "A-7", "lines": 2}}, "A-7"),
        (
            '="order-" + order.id + "/" + region',
            {"order": {"id": "9"}, "region": "eu"},
            "order-9/eu",
        ),
        ("=invoice", {"invoice": 42}, "42"),
        ("=invoice + 0.5", {"invoice": 1}, "1.5"),
        ("=upper case(customer)", {"customer": "acme"}, "ACME"),
        ("static-key", {}, "static-key"),
    ],
)
def test_correlation_key_is_feel_evaluated_when_the_wait_begins(
    eng: ProcessEngine, expression: str, variables: dict[str, Any], key: str
) -> None:
    eng.deploy(_keyed(expression))
    inst = eng.start("p", variables)
    other = eng.start("p", {**variables, "unrelated": True}) if expression == "static-key" else None
    (sub,) = [s for s in eng.store.subscribers("message", "paid") if s["instance_id"] == inst.id]
    assert sub["correlation_key"] == key
    with pytest.raises(CorrelationError):
        eng.correlate_message("paid", correlation_key=key + "-other")
    if other is not None:
        eng.correlate_message_all("paid", correlation_key=key)
        assert eng.get_instance(other.id).state == "completed"
    else:
        eng.correlate_message("paid", {"paid": True}, correlation_key=key)
    done = eng.get_instance(inst.id)
    assert done.state == "completed"


def test_correlation_key_is_kept_from_when_the_wait_began(eng: ProcessEngine) -> None:
    eng.deploy(_keyed("=order.id"))
    a = eng.start("p", {"order": {"id": "A"}})
    b = eng.start("p", {"order": {"id": 7}})
    # Changing the variable later does not move the subscription (Zeebe's rule).
    eng.set_variables(a.id, {"order": {"id": "Z"}})
    with pytest.raises(CorrelationError):
        eng.correlate_message("paid", correlation_key="Z")
    assert eng.correlate_message("paid", correlation_key=7).id == b.id  # a number: its digits
    assert eng.correlate_message("paid", correlation_key="A").id == a.id
    assert eng.get_instance(a.id).state == "completed"


def test_a_correlation_key_that_cannot_be_evaluated_fails_the_start(eng: ProcessEngine) -> None:
    eng.deploy(_keyed("=order.id"))
    with pytest.raises(EngineError, match="Wait.*correlation key of message 'paid'"):
        eng.start("p", {"order": {"code": "no id"}})
    assert eng.instances() == []


DMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d"
  namespace="http://camunda.org/schema/1.0/dmn">
  <decision id="fee" name="Fee">
    <decisionTable id="t" hitPolicy="FIRST">
      <input id="i1" label="Amount"><inputExpression id="e1" typeRef="number">
        <text>amount</text></inputExpression></input>
      <output id="o1" name="fee" typeRef="number" />
      <rule id="r1"><inputEntry id="a1"><text>&gt; 100</text></inputEntry>
        <outputEntry id="b1"><text>5</text></outputEntry></rule>
      <rule id="r2"><inputEntry id="a2"><text>-</text></inputEntry>
        <outputEntry id="b2"><text>10</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>"""


def test_called_decision_and_feel_script(eng: ProcessEngine, tmp_path: Any) -> None:
    rule = (
        '<bpmn:businessRuleTask id="Fee"><bpmn:extensionElements>'
        '<zeebe:calledDecision decisionId="fee" resultVariable="fee" />'
        "</bpmn:extensionElements></bpmn:businessRuleTask>"
    )
    script = (
        '<bpmn:scriptTask id="Total"><bpmn:extensionElements>'
        '<zeebe:script expression="=amount + fee" resultVariable="total" />'
        "</bpmn:extensionElements></bpmn:scriptTask>"
    )
    (tmp_path / "fee.dmn").write_bytes(DMN)
    (tmp_path / "p.bpmn").write_bytes(model(rule, script))
    eng.deploy(tmp_path)
    done = eng.start("p", {"amount": 200})
    assert done.variables["fee"] == 5 and done.variables["total"] == 205


def test_feel_timer_duration(eng: ProcessEngine, clock: ManualClock) -> None:
    timer = (
        '<bpmn:intermediateCatchEvent id="Wait"><bpmn:timerEventDefinition id="T1">'
        '<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">'
        '=duration("PT" + string(minutes) + "M")'
        "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
    )
    eng.deploy(model(timer))
    inst = eng.start("p", {"minutes": 15})
    [job] = eng.jobs(inst.id)
    assert (job.due_at - clock.now()).total_seconds() == pytest.approx(900, abs=1)
    advance_and_run(clock, eng, 901)
    assert eng.get_instance(inst.id).state == "completed"


def test_user_task_values_land_on_the_camunda_attributes() -> None:
    from lxml import etree

    from engine.deploy import zeebe

    xml = model(
        '<bpmn:userTask id="Review"><bpmn:extensionElements><zeebe:userTask />'
        '<zeebe:assignmentDefinition assignee="=owner" candidateGroups="sales, ops" '
        'candidateUsers="ann" />'
        '<zeebe:formDefinition formId="review-form" />'
        '<zeebe:taskSchedule dueDate="=now() + duration(&quot;P1D&quot;)" '
        'followUpDate="2030-01-01T00:00:00Z" />'
        '<zeebe:priorityDefinition priority="=urgency" />'
        "</bpmn:extensionElements></bpmn:userTask>"
    )
    root = etree.fromstring(xml)
    refused: list[str] = []
    zeebe.translate(root, lambda node, reason: refused.append(reason))
    node = next(n for n in root.iter() if n.get("id") == "Review")
    c = "{http://camunda.org/schema/1.0/bpmn}"
    assert refused == []
    assert node.get(c + "assignee") == "=owner"  # FEEL kept in its =expr form
    assert node.get(c + "candidateGroups") == "sales, ops"
    assert node.get(c + "candidateUsers") == "ann"
    assert node.get(c + "formKey") == "review-form"
    assert node.get(c + "dueDate") == '=now() + duration("P1D")'
    assert node.get(c + "followUpDate") == "2030-01-01T00:00:00Z"
    assert node.get(c + "priority") == "=urgency"


def test_a_job_worker_user_task_keeps_waiting_whatever_its_task_definition_says(
    eng: ProcessEngine, tmp_path: Any
) -> None:
    """Camunda's get-started send-email.bpmn (Modeler 1.x): a user task with a
    zeebe:taskDefinition, which Zeebe overrides with io.camunda.zeebe:userTask."""
    from engine.cli import conformance

    sent: list[str] = []
    eng.register_handler("email", lambda ctx: sent.append(ctx.variables["message_content"]))
    path = tmp_path / "send-email.bpmn"
    path.write_bytes(
        model(
            '<bpmn:userTask id="enterMessageTask"><bpmn:extensionElements>'
            '<zeebe:taskDefinition type="humanTask" />'
            '<zeebe:formDefinition formKey="camunda-forms:bpmn:userTaskForm_1" />'
            "</bpmn:extensionElements></bpmn:userTask>",
            '<bpmn:serviceTask id="sendEmailTask"><bpmn:extensionElements>'
            '<zeebe:taskDefinition type="email" retries="" /></bpmn:extensionElements>'
            "</bpmn:serviceTask>",
        )
    )
    eng.deploy(path)
    inst = eng.start("p")
    assert inst.waiting_at == ["enterMessageTask"] and sent == []
    done = eng.complete_task(inst.id, "enterMessageTask", {"message_content": "hi"})
    assert done.state == "completed" and sent == ["hi"]
    [listed] = conformance.ignored_words(path)
    assert listed.startswith("zeebe:taskDefinition (") and "io.camunda.zeebe:userTask" in listed


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        (
            '<bpmn:manualTask id="X"><bpmn:extensionElements><zeebe:taskDefinition type="a" />'
            "</bpmn:extensionElements></bpmn:manualTask>",
            "element 'X': zeebe:taskDefinition is not honoured on a manualTask",
        ),
        (
            '<bpmn:serviceTask id="X"><bpmn:extensionElements><zeebe:taskDefinition type="a" />'
            '<zeebe:linkedResources><zeebe:linkedResource resourceId="r" /></zeebe:linkedResources>'
            "</bpmn:extensionElements></bpmn:serviceTask>",
            "element 'X': zeebe:linkedResources (element): linked resources",
        ),
        (
            '<bpmn:serviceTask id="X"><bpmn:extensionElements>'
            '<zeebe:taskDefinition type="a" retries="3" priority="5" />'
            "</bpmn:extensionElements></bpmn:serviceTask>",
            "element 'X': zeebe:taskDefinition priority (attribute)",
        ),
        (
            '<bpmn:serviceTask id="X"><bpmn:extensionElements><zeebe:taskDefinition type="a" />'
            '<zeebe:ioMapping><zeebe:input source="=a +" target="b" /></zeebe:ioMapping>'
            "</bpmn:extensionElements></bpmn:serviceTask>",
            "element 'X': zeebe:input 'b' source '=a +' cannot be evaluated",
        ),
        (
            '<bpmn:serviceTask id="X"><bpmn:extensionElements><zeebe:taskDefinition type="a" />'
            "<zeebe:somethingNew /></bpmn:extensionElements></bpmn:serviceTask>",
            "zeebe:somethingNew is not part of Spillway's vocabulary",
        ),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_file_element_and_word(
    eng: ProcessEngine, element: str, reason: str, tmp_path: Any
) -> None:
    eng.register_handler("a", lambda ctx: None)
    path = tmp_path / "c8.bpmn"
    path.write_bytes(model(element))
    with pytest.raises(DeploymentError) as err:
        eng.deploy(path)
    assert reason in str(err.value) and "c8.bpmn" in str(err.value)
