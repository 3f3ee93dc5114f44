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
