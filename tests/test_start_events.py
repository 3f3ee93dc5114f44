"""How ``start()`` begins a process by its start events, and messages at event-based gateways."""

from __future__ import annotations

from engine import ProcessEngine
from engine.testing import assert_that
from tests.bpmnbuild import process, user

MESSAGES = '<bpmn:message id="Go" name="go" /><bpmn:message id="Stop" name="stop" />'


def test_start_of_a_process_with_only_a_message_start_event_begins_there(
    eng: ProcessEngine,
) -> None:
    start = (
        '<bpmn:startEvent id="Ordered"><bpmn:messageEventDefinition messageRef="Go" />'
        "</bpmn:startEvent>"
    )
    eng.deploy(process("p", user("Ship"), start=start, definitions=MESSAGES))
    inst = eng.start("p")
    assert_that(inst, engine=eng).is_waiting_exactly_at("Ship").has_passed("Ordered")


def test_start_of_a_process_with_a_none_start_event_leaves_the_others_alone(
    eng: ProcessEngine,
) -> None:
    xml = process(
        "p",
        user("Ship"),
        definitions=MESSAGES,
        extra=(
            '<bpmn:startEvent id="ByMessage"><bpmn:messageEventDefinition messageRef="Go" />'
            '</bpmn:startEvent><bpmn:sequenceFlow id="m1" sourceRef="ByMessage" targetRef="Rush" />'
            '<bpmn:userTask id="Rush" /><bpmn:sequenceFlow id="m2" sourceRef="Rush" '
            'targetRef="EndEvent_1" />'
        ),
    )
    eng.deploy(xml)
    inst = eng.start("p")
    assert_that(inst, engine=eng).is_waiting_exactly_at("Ship").has_not_passed("ByMessage")


def test_an_event_based_gateway_waits_for_either_message(eng: ProcessEngine) -> None:
    gateway = (
        '<bpmn:eventBasedGateway id="Gw" />'
        '<bpmn:intermediateCatchEvent id="OnGo"><bpmn:messageEventDefinition messageRef="Go" />'
        "</bpmn:intermediateCatchEvent>"
        '<bpmn:intermediateCatchEvent id="OnStop"><bpmn:messageEventDefinition '
        'messageRef="Stop" /></bpmn:intermediateCatchEvent>'
    )
    flows = [
        ("StartEvent_1", "Gw"),
        ("Gw", "OnGo"),
        ("Gw", "OnStop"),
        ("OnGo", "EndEvent_1"),
        ("OnStop", "EndEvent_1"),
    ]
    eng.deploy(process("p", gateway, flows=flows, definitions=MESSAGES))
    first, second = eng.start("p"), eng.start("p", {"n": 2})
    eng.correlate_message("stop", correlation={"n": 2})
    assert_that(second, engine=eng).is_completed().has_passed("OnStop").has_not_passed("OnGo")
    eng.correlate_message("go")
    assert_that(first, engine=eng).is_completed().has_passed("OnGo")


TWO_PROCESSES = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:message id="Message_Order" name="order-received" />
  <bpmn:collaboration id="Collab">
    <bpmn:participant id="P_Shop" processRef="Shop" />
    <bpmn:participant id="P_Audit" processRef="Audit" />
  </bpmn:collaboration>
  <bpmn:process id="Shop" isExecutable="true">
    <bpmn:startEvent id="OrderReceived">
      <bpmn:messageEventDefinition messageRef="Message_Order" />
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="s1" sourceRef="OrderReceived" targetRef="Pack" />
    <bpmn:userTask id="Pack" />
    <bpmn:sequenceFlow id="s2" sourceRef="Pack" targetRef="ShopEnd" />
    <bpmn:endEvent id="ShopEnd" />
  </bpmn:process>
  <bpmn:process id="Audit" isExecutable="true">
    <bpmn:startEvent id="AuditStart" />
    <bpmn:sequenceFlow id="a1" sourceRef="AuditStart" targetRef="Check" />
    <bpmn:userTask id="Check" />
    <bpmn:sequenceFlow id="a2" sourceRef="Check" targetRef="AuditEnd" />
    <bpmn:endEvent id="AuditEnd" />
    <bpmn:subProcess id="OnOrder" triggeredByEvent="true">
      <bpmn:startEvent id="OrderSeen" isInterrupting="false">
        <bpmn:messageEventDefinition messageRef="Message_Order" />
      </bpmn:startEvent>
      <bpmn:sequenceFlow id="e1" sourceRef="OrderSeen" targetRef="Noted" />
      <bpmn:endEvent id="Noted" />
    </bpmn:subProcess>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_message_starts_only_the_process_of_a_file_whose_start_event_has_it(
    eng: ProcessEngine,
) -> None:
    # Two processes in one file, one with a message start event; the other only catches the
    # message in an event subprocess (which never starts an instance).
    eng.deploy(TWO_PROCESSES, name="two.bpmn")
    inst = eng.correlate_message("order-received", variables={"order": 7})
    assert inst.process_key == "Shop"
    assert_that(inst, engine=eng).is_waiting_exactly_at("Pack").has_passed("OrderReceived")
    assert inst.variables == {"order": 7}
    assert [i.process_key for i in eng.instances()] == ["Shop"]
