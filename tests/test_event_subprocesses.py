"""Event subprocesses started by errors, escalations and messages interrupt their scope.

SpiffWorkflow parses error and escalation start events as none start events (so an error
event subprocess ran at every start), runs every event subprocess as non-interrupting, and
gives one started by an event no path to the scope's end.
"""

from __future__ import annotations

from engine import BpmnError, ProcessEngine
from engine.testing import assert_that
from tests.bpmnbuild import NS

ERROR = '<bpmn:error id="Err" errorCode="E1" /><bpmn:escalation id="Esc" escalationCode="X1" />'


def document(main: str, handlers: str, *, interrupting: bool = True) -> bytes:
    flag = "true" if interrupting else "false"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="t">
  {ERROR}
  <bpmn:message id="Cancel" name="cancel" />
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="Begin" />
    <bpmn:sequenceFlow id="f1" sourceRef="Begin" targetRef="Sub" />
    <bpmn:subProcess id="Sub">
      <bpmn:startEvent id="SubStart" />
      <bpmn:sequenceFlow id="f2" sourceRef="SubStart" targetRef="Inner" />
      {main}
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f3" sourceRef="Sub" targetRef="After" />
    <bpmn:userTask id="After" />
    <bpmn:sequenceFlow id="f4" sourceRef="After" targetRef="Finish" />
    <bpmn:endEvent id="Finish" />
    <bpmn:subProcess id="Handler" triggeredByEvent="true">
      <bpmn:startEvent id="Caught" isInterrupting="{flag}">{handlers}</bpmn:startEvent>
      <bpmn:sequenceFlow id="h1" sourceRef="Caught" targetRef="Handle" />
      <bpmn:serviceTask id="Handle" camunda:class="handle" />
      <bpmn:sequenceFlow id="h2" sourceRef="Handle" targetRef="Handled" />
      <bpmn:endEvent id="Handled" />
    </bpmn:subProcess>
  </bpmn:process>
</bpmn:definitions>""".encode()


ERROR_END = '<bpmn:endEvent id="Inner"><bpmn:errorEventDefinition errorRef="Err" /></bpmn:endEvent>'
USER_THEN_END = (
    '<bpmn:userTask id="Inner" /><bpmn:sequenceFlow id="f5" sourceRef="Inner" '
    'targetRef="SubEnd" /><bpmn:endEvent id="SubEnd" />'
)
ON_ERROR = '<bpmn:errorEventDefinition errorRef="Err" />'


def _engine(eng: ProcessEngine, xml: bytes) -> ProcessEngine:
    eng.register_handler("handle", lambda ctx: {"handled": True})
    eng.deploy(xml)
    return eng


def test_an_error_event_subprocess_waits_for_its_error(eng: ProcessEngine) -> None:
    inst = _engine(eng, document(USER_THEN_END, ON_ERROR)).start("p")
    assert_that(inst, engine=eng).is_waiting_exactly_at("Inner").has_not_passed("Caught", "Handle")
    eng.complete_task(inst.id, "Inner")
    eng.complete_task(inst.id, "After")
    assert_that(inst, engine=eng).is_completed().has_not_passed("Caught", "Handle")


def test_an_error_end_event_in_a_subprocess_interrupts_the_process(eng: ProcessEngine) -> None:
    inst = _engine(eng, document(ERROR_END, ON_ERROR)).start("p")
    assert_that(inst, engine=eng).is_completed().has_passed("Inner", "Caught", "Handle", "Handled")
    assert_that(inst, engine=eng).has_not_passed("After", "Finish").has_variables(handled=True)


def test_a_boundary_event_on_the_subprocess_catches_first(eng: ProcessEngine) -> None:
    xml = document(ERROR_END, ON_ERROR).replace(
        b'<bpmn:sequenceFlow id="f3"',
        b'<bpmn:boundaryEvent id="Boundary" attachedToRef="Sub">'
        b'<bpmn:errorEventDefinition errorRef="Err" /></bpmn:boundaryEvent>'
        b'<bpmn:sequenceFlow id="fb" sourceRef="Boundary" targetRef="AfterError" />'
        b'<bpmn:endEvent id="AfterError" /><bpmn:sequenceFlow id="f3"',
    )
    inst = _engine(eng, xml).start("p")
    assert_that(inst, engine=eng).is_completed().has_passed("Boundary", "AfterError")
    assert_that(inst, engine=eng).has_not_passed("Caught", "Handle", "After")


def test_a_handlers_bpmn_error_interrupts_through_the_event_subprocess(
    eng: ProcessEngine,
) -> None:
    def fail(ctx: object) -> None:
        raise BpmnError("E1")

    eng.register_handler("fail", fail)
    main = (
        '<bpmn:serviceTask id="Inner" camunda:class="fail" /><bpmn:sequenceFlow id="f5" '
        'sourceRef="Inner" targetRef="SubEnd" /><bpmn:endEvent id="SubEnd" />'
    )
    inst = _engine(eng, document(main, ON_ERROR)).start("p")
    done = assert_that(inst, engine=eng).is_completed()
    done.has_passed("Caught", "Handle").has_not_passed("After")


def test_an_escalation_end_event_starts_its_event_subprocess(eng: ProcessEngine) -> None:
    main = '<bpmn:endEvent id="Inner"><bpmn:escalationEventDefinition escalationRef="Esc" />'
    main += "</bpmn:endEvent>"
    on_escalation = '<bpmn:escalationEventDefinition escalationRef="Esc" />'
    inst = _engine(eng, document(main, on_escalation)).start("p")
    done = assert_that(inst, engine=eng).is_completed()
    done.has_passed("Caught", "Handle").has_not_passed("After")


def test_an_interrupting_message_event_subprocess_ends_the_process(eng: ProcessEngine) -> None:
    on_message = '<bpmn:messageEventDefinition messageRef="Cancel" />'
    inst = _engine(eng, document(USER_THEN_END, on_message)).start("p")
    eng.correlate_message("cancel")
    done = assert_that(inst, engine=eng).is_completed()
    done.has_passed("Caught", "Handle").has_not_passed("After")


def test_a_non_interrupting_message_event_subprocess_runs_beside(eng: ProcessEngine) -> None:
    on_message = '<bpmn:messageEventDefinition messageRef="Cancel" />'
    inst = _engine(eng, document(USER_THEN_END, on_message, interrupting=False)).start("p")
    eng.correlate_message("cancel")
    assert_that(inst, engine=eng).is_active().is_waiting_exactly_at("Inner").has_passed("Handle")
    eng.complete_task(inst.id, "Inner")
    eng.complete_task(inst.id, "After")
    assert_that(inst, engine=eng).is_completed()
