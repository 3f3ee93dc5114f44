"""Signals reach every instance waiting for them, as in Camunda: from ``signal()`` and from a
signal thrown in another instance, once per signal, whatever crashes in between."""

from __future__ import annotations

import pytest

from engine import ExpressionError, ProcessEngine
from engine.testing import assert_that
from tests.bpmnbuild import process, user

SIGNAL = '<bpmn:signal id="Stop" name="stop" />'
CATCH = (
    '<bpmn:intermediateCatchEvent id="Wait"><bpmn:signalEventDefinition signalRef="Stop" />'
    "</bpmn:intermediateCatchEvent>"
)
THROW = (
    '<bpmn:intermediateThrowEvent id="Shout"><bpmn:signalEventDefinition signalRef="Stop" />'
    "</bpmn:intermediateThrowEvent>"
)


def waiter(pid: str = "waiter") -> bytes:
    return process(pid, CATCH, definitions=SIGNAL)


def test_a_signal_reaches_every_waiting_instance(eng: ProcessEngine) -> None:
    eng.deploy(waiter())
    first, second = eng.start("waiter"), eng.start("waiter")
    assert eng.signal("stop", {"reason": "closing"}) == 2
    for inst in (first, second):
        assert_that(inst, engine=eng).is_completed().has_variables(reason="closing")
    assert eng.signal("stop") == 0  # nobody waits any more


def test_a_signal_interrupts_a_task_through_its_boundary_event(eng: ProcessEngine) -> None:
    xml = process(
        "p",
        user("Work"),
        definitions=SIGNAL,
        extra=(
            '<bpmn:boundaryEvent id="Stopped" attachedToRef="Work">'
            '<bpmn:signalEventDefinition signalRef="Stop" /></bpmn:boundaryEvent>'
            '<bpmn:sequenceFlow id="b1" sourceRef="Stopped" targetRef="Cleanup" />'
            '<bpmn:userTask id="Cleanup" />'
        ),
    )
    eng.deploy(xml)
    inst = eng.start("p")
    assert eng.signal("stop") == 1
    assert_that(inst, engine=eng).is_waiting_exactly_at("Cleanup").has_passed("Stopped")


def test_a_signal_thrown_in_one_instance_reaches_the_others(eng: ProcessEngine) -> None:
    eng.deploy(waiter())
    eng.deploy(process("thrower", THROW, definitions=SIGNAL))
    waiting = [eng.start("waiter") for _ in range(3)]
    thrower = eng.start("thrower")
    assert_that(thrower, engine=eng).is_completed().has_passed("Shout")
    for inst in waiting:
        assert_that(inst, engine=eng).is_completed().has_passed("Wait")
    assert eng.jobs() == []  # the signal's job ran right after the throw's commit


def test_a_signal_job_left_by_a_crash_runs_later_and_delivers_once(eng: ProcessEngine) -> None:
    calls: list[str] = []
    eng.register_handler("note", lambda ctx: calls.append(ctx.instance_id))
    watcher = process(
        "watcher",
        user("Work"),
        definitions=SIGNAL,
        extra=(
            # Non-interrupting: every signal starts it again, so a duplicate would show.
            '<bpmn:subProcess id="OnStop" triggeredByEvent="true">'
            '<bpmn:startEvent id="Heard" isInterrupting="false">'
            '<bpmn:signalEventDefinition signalRef="Stop" /></bpmn:startEvent>'
            '<bpmn:sequenceFlow id="b1" sourceRef="Heard" targetRef="Note" />'
            '<bpmn:serviceTask id="Note" camunda:class="note" />'
            '<bpmn:sequenceFlow id="b2" sourceRef="Note" targetRef="Noted" />'
            '<bpmn:endEvent id="Noted" /></bpmn:subProcess>'
        ),
    )
    eng.deploy(watcher)
    eng.deploy(process("thrower", THROW, definitions=SIGNAL))
    inst = eng.start("watcher")
    # As if the node died after committing the throw, before running its job.
    original = eng.execute_job
    eng.execute_job = lambda job_id: None  # type: ignore[method-assign]
    try:
        eng.start("thrower")
    finally:
        eng.execute_job = original  # type: ignore[method-assign]
    [job] = eng.jobs()
    assert job.kind == "signal" and calls == []
    row = eng.store.job(job.id)
    assert row is not None
    signal_id = row["payload"]["signal_id"]
    assert eng.run_jobs() == 1
    assert calls == [inst.id]
    # The same signal again (its job re-run after a lost lock) is not applied twice...
    eng.commands.broadcast_signal("stop", {}, signal_id, exclude=None)
    assert calls == [inst.id]
    # ...while a new signal is.
    assert eng.signal("stop") == 1
    assert calls == [inst.id, inst.id]
    assert_that(inst, engine=eng).is_waiting_exactly_at("Work")


def test_a_signal_starts_an_event_subprocess_in_a_running_subprocess(
    eng: ProcessEngine,
) -> None:
    sub = (
        '<bpmn:subProcess id="Sub"><bpmn:startEvent id="S" />'
        '<bpmn:sequenceFlow id="s1" sourceRef="S" targetRef="Inner" /><bpmn:userTask id="Inner" />'
        '<bpmn:sequenceFlow id="s2" sourceRef="Inner" targetRef="E" /><bpmn:endEvent id="E" />'
        '<bpmn:subProcess id="OnStop" triggeredByEvent="true">'
        '<bpmn:startEvent id="Caught"><bpmn:signalEventDefinition signalRef="Stop" />'
        '</bpmn:startEvent><bpmn:sequenceFlow id="h1" sourceRef="Caught" targetRef="Handled" />'
        '<bpmn:endEvent id="Handled" /></bpmn:subProcess></bpmn:subProcess>'
    )
    eng.deploy(process("p", sub, user("After"), definitions=SIGNAL))
    inst = eng.start("p")
    assert_that(inst, engine=eng).is_waiting_exactly_at("Inner")
    assert eng.signal("stop") == 1
    assert_that(inst, engine=eng).is_waiting_exactly_at("After").has_passed("Caught", "Handled")


def _watcher_with_boundary(definition: str) -> bytes:
    return process(
        "p",
        user("Work"),
        definitions=SIGNAL + '<bpmn:message id="Ping" name="ping" />',
        extra=(
            '<bpmn:boundaryEvent id="Heard" attachedToRef="Work" cancelActivity="false">'
            f"{definition}</bpmn:boundaryEvent>"
            '<bpmn:sequenceFlow id="b1" sourceRef="Heard" targetRef="Note" />'
            '<bpmn:serviceTask id="Note" camunda:class="note" />'
            '<bpmn:sequenceFlow id="b2" sourceRef="Note" targetRef="Noted" />'
            '<bpmn:endEvent id="Noted" />'
        ),
    )


def test_a_non_interrupting_signal_boundary_event_fires_every_time(eng: ProcessEngine) -> None:
    calls: list[int] = []
    eng.register_handler("note", lambda ctx: calls.append(1))
    eng.deploy(_watcher_with_boundary('<bpmn:signalEventDefinition signalRef="Stop" />'))
    inst = eng.start("p")
    for expected in (1, 2, 3):
        assert eng.signal("stop") == 1
        assert len(calls) == expected
    eng.complete_task(inst.id, "Work")
    assert_that(inst, engine=eng).is_completed()
    assert eng.signal("stop") == 0  # the activity ended: nothing listens any more


def test_a_non_interrupting_message_boundary_event_fires_every_time(eng: ProcessEngine) -> None:
    calls: list[int] = []
    eng.register_handler("note", lambda ctx: calls.append(1))
    eng.deploy(_watcher_with_boundary('<bpmn:messageEventDefinition messageRef="Ping" />'))
    inst = eng.start("p")
    eng.correlate_message("ping")
    eng.correlate_message("ping")
    assert len(calls) == 2
    assert_that(inst, engine=eng).is_waiting_exactly_at("Work")
    eng.complete_task(inst.id, "Work")
    assert_that(inst, engine=eng).is_completed()


SIGNAL_START = (
    '<bpmn:startEvent id="OnStop"><bpmn:signalEventDefinition signalRef="Stop" /></bpmn:startEvent>'
)


def test_a_signal_starts_every_process_with_its_signal_start_event(eng: ProcessEngine) -> None:
    eng.deploy(process("cleanup", user("Tidy"), start=SIGNAL_START, definitions=SIGNAL))
    eng.deploy(waiter())
    waiting = eng.start("waiter")
    assert eng.signal("stop", {"reason": "closing"}) == 2  # one waiting, one started
    assert_that(waiting, engine=eng).is_completed()
    [started] = eng.instances("cleanup")
    assert_that(started, engine=eng).is_waiting_exactly_at("Tidy").has_passed("OnStop")
    assert_that(started, engine=eng).has_variables(reason="closing")


def test_a_signal_run_again_starts_nothing_twice(eng: ProcessEngine) -> None:
    eng.deploy(process("cleanup", user("Tidy"), start=SIGNAL_START, definitions=SIGNAL))
    assert eng.commands.broadcast_signal("stop", {}, "s-1", exclude=None) == 1
    assert eng.commands.broadcast_signal("stop", {}, "s-1", exclude=None) == 0
    assert len(eng.instances("cleanup")) == 1
    assert eng.signal("stop") == 1  # a new signal starts a new one
    assert len(eng.instances("cleanup")) == 2


def test_a_thrown_signal_starts_processes_too(eng: ProcessEngine) -> None:
    eng.deploy(process("cleanup", user("Tidy"), start=SIGNAL_START, definitions=SIGNAL))
    eng.deploy(process("thrower", THROW, definitions=SIGNAL))
    eng.start("thrower")
    [started] = eng.instances("cleanup")
    assert_that(started, engine=eng).is_waiting_exactly_at("Tidy")


def test_an_instance_failing_to_take_a_signal_keeps_none_of_the_others_from_it(
    eng: ProcessEngine,
) -> None:
    # After the catch, a gateway reads a variable only some instances have.
    gateway = '<bpmn:exclusiveGateway id="Check" default="f_no" />'
    flows = [
        ("StartEvent_1", "Wait"),
        ("Wait", "Check"),
        ("Check", "EndEvent_1", "${priority > 1}"),
    ]
    xml = process("waiter", CATCH, gateway, flows=flows, definitions=SIGNAL).replace(
        b"</bpmn:process>",
        b'<bpmn:sequenceFlow id="f_no" sourceRef="Check" targetRef="EndEvent_1" /></bpmn:process>',
    )
    eng.deploy(xml)
    good = [eng.start("waiter", {"priority": n}) for n in (1, 2, 3)]
    bad = eng.start("waiter")  # no priority: its gateway cannot decide
    with pytest.raises(ExpressionError, match="priority"):
        eng.signal("stop")
    for inst in good:
        assert_that(inst, engine=eng).is_completed()
    assert_that(bad, engine=eng).is_waiting_exactly_at("Wait")  # its attempt left nothing
