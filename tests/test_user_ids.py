"""Element ids are the user's: ids SpiffWorkflow uses for its own specs (Start, End, Root,
<process>.EndJoin, StartEventSplit...) deploy and run, and everything shows the user's ids."""

from __future__ import annotations

import pytest

from engine import ProcessEngine
from engine.testing import ManualClock, assert_that
from tests.bpmnbuild import process, service, user

SUBPROCESS = (
    '<bpmn:subProcess id="Root">'
    '<bpmn:startEvent id="StartEventSplit" /><bpmn:userTask id="Root.BoundaryEventParent" />'
    '<bpmn:endEvent id="Root.EndJoin" />'
    '<bpmn:sequenceFlow id="s1" sourceRef="StartEventSplit" targetRef="Root.BoundaryEventParent" />'
    '<bpmn:sequenceFlow id="s2" sourceRef="Root.BoundaryEventParent" targetRef="Root.EndJoin" />'
    "</bpmn:subProcess>"
)


def test_start_and_end_events_named_start_and_end(eng: ProcessEngine) -> None:
    eng.register_handler("stamp", lambda ctx: {"stamped": True})
    eng.deploy(
        process(
            "p",
            service("p.EndJoin", "stamp"),
            user("StartEventSplit"),
            start='<bpmn:startEvent id="Start" />',
            end='<bpmn:endEvent id="End" />',
        )
    )
    inst = eng.start("p")
    assert inst.waiting_at == ["StartEventSplit"]
    assert_that(inst, engine=eng).is_waiting_at("StartEventSplit").has_passed("Start", "p.EndJoin")
    done = eng.complete_task(inst.id, "StartEventSplit")
    assert_that(done, engine=eng).is_completed().has_passed(
        "Start", "p.EndJoin", "StartEventSplit", "End"
    )
    ids = [(h.activity_id, h.activity_type) for h in eng.history(inst.id)]
    assert ids == [
        ("Start", "startEvent"),
        ("p.EndJoin", "serviceTask"),
        ("StartEventSplit", "userTask"),
        ("End", "endEvent"),
    ]


def test_gateways_and_subprocesses_with_library_names(make_engine: object) -> None:
    xml = process(
        "q",
        '<bpmn:exclusiveGateway id="End.BoundaryEventSplit" default="f_no" />',
        SUBPROCESS,
        '<bpmn:parallelGateway id="StartEventJoin" />',
        flows=[
            ("Start", "End.BoundaryEventSplit"),
            ("End.BoundaryEventSplit", "Root", "go == True"),
            ("Root", "StartEventJoin"),
            ("StartEventJoin", "End"),
        ],
        start='<bpmn:startEvent id="Start" />',
        end='<bpmn:endEvent id="End" />',
        extra='<bpmn:sequenceFlow id="f_no" sourceRef="End.BoundaryEventSplit" targetRef="End" />',
    )
    first: ProcessEngine = make_engine()  # type: ignore[operator]
    first.deploy(xml)
    skipped = first.start("q", {"go": False})
    assert_that(skipped, engine=first).is_completed().has_not_passed("Root")
    inst = first.start("q", {"go": True})
    assert inst.waiting_at == ["Root.BoundaryEventParent"]  # the user task in the subprocess
    first.close()
    # A second engine on the same database reloads the instance from storage.
    second: ProcessEngine = make_engine()  # type: ignore[operator]
    second.deploy(xml)
    done = second.complete_task(inst.id, "Root.BoundaryEventParent", {"ok": 1})
    assert_that(done, engine=second).is_completed().has_variables(ok=1)
    passed = [h.activity_id for h in second.history(inst.id)]
    assert sorted(passed) == sorted(
        [
            "Start",
            "End.BoundaryEventSplit",
            "Root",
            "StartEventSplit",
            "Root.BoundaryEventParent",
            "Root.EndJoin",
            "StartEventJoin",
            "End",
        ]
    )


@pytest.mark.parametrize(
    "task_id", ["Start", "End", "Root", "p.EndJoin", "Start.BoundaryEventJoin"]
)
def test_service_task_retry_job_and_incident_use_the_users_id(
    eng: ProcessEngine, clock: ManualClock, task_id: str
) -> None:
    def fail(ctx: object) -> None:
        raise ConnectionError("down")

    eng.register_handler("fail", fail)
    eng.deploy(process("p", service(task_id, "fail", extra='camunda:asyncBefore="false"')))
    inst = eng.start("p")
    assert inst.waiting_at == [task_id]
    (job,) = eng.jobs(inst.id)
    assert job.activity_id == task_id
    for _ in range(4):  # the three retries of the default policy, then an incident
        clock.advance(3600)
        eng.run_jobs()
    assert [i.activity_id for i in eng.incidents(inst.id)] == [task_id]


def test_plain_task_passes_straight_through(eng: ProcessEngine) -> None:
    """bpmn:task (bpmn.io's default shape) is no wait state, as in Camunda 7 and 8."""
    eng.deploy(process("p", '<bpmn:task id="Task_1" name="Think" />', user("Review")))
    inst = eng.start("p")
    assert inst.waiting_at == ["Review"]
    [row] = [h for h in eng.history(inst.id) if h.activity_id == "Task_1"]
    assert row.activity_type == "task" and row.outcome == "completed"


@pytest.mark.parametrize("sub_id", ["End", "Start", "p.EndJoin"])
def test_event_subprocess_named_like_a_library_spec(eng: ProcessEngine, sub_id: str) -> None:
    evsub = (
        f'<bpmn:subProcess id="{sub_id}" triggeredByEvent="true">'
        '<bpmn:startEvent id="Root" isInterrupting="true">'
        '<bpmn:messageEventDefinition messageRef="m" /></bpmn:startEvent>'
        '<bpmn:endEvent id="Root.EndJoin" />'
        '<bpmn:sequenceFlow id="e1" sourceRef="Root" targetRef="Root.EndJoin" />'
        "</bpmn:subProcess>"
    )
    eng.deploy(
        process("p", user("Wait"), definitions='<bpmn:message id="m" name="Cancel" />', extra=evsub)
    )
    plain = eng.start("p")
    done = eng.complete_task(plain.id, "Wait")
    assert done.state == "completed" and done.waiting_at == []
    cancelled = eng.start("p", business_key="C")
    hit = eng.correlate_message("Cancel", business_key="C")
    assert hit.id == cancelled.id and hit.state == "completed"
    assert [h.activity_id for h in eng.history(hit.id)][-3:] == ["Root", "Root.EndJoin", sub_id]
