"""Execution and task listeners (Camunda 7 and Camunda 8), as Camunda Modeler writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import DeploymentError, ProcessEngine
from engine.core.errors import HandlerError
from engine.core.values import TaskContext
from engine.testing import ManualClock

HERE = Path(__file__).parent / "bpmn" / "listeners"


class Audit:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str]] = []
        self.contexts: list[TaskContext] = []

    def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.calls.append((ctx.event, ctx.activity_id))
        self.contexts.append(ctx)
        return {f"seen_{ctx.event}": len(self.calls)}


def _engine(eng: ProcessEngine, audit: Audit) -> ProcessEngine:
    eng.register_handler("audit", audit)
    eng.register_handler("work", lambda ctx: {"worked": True})
    return eng


def test_execution_listeners_fire_in_camunda_order_on_every_element_kind(
    eng: ProcessEngine,
) -> None:
    audit = Audit()
    _engine(eng, audit).deploy(HERE / "execution_listeners.bpmn")
    inst = eng.start("listened", variables={"amount": 50})
    assert audit.calls == [
        ("start", "listened"),  # process start: activity_id is the process id
        ("end", "StartEvent_1"),
        ("take", "Flow_1"),  # take: activity_id is the flow id (delegateExpression)
        ("start", "Work"),
        ("end", "Work"),
        ("take", "Flow_low"),  # only the flow the gateway took
        ("end", "listened"),
    ]
    done = eng.get_instance(inst.id)
    assert done.state == "completed"
    # What listeners return are process variables; expression and script listeners set some.
    assert done.variables["gateway_seen"] == 100
    assert done.variables["end_script"] == 51
    assert done.variables["seen_take"] == 6
    assert done.variables["worked"] is True


def test_user_task_listeners_create_assignment_complete(eng: ProcessEngine) -> None:
    audit = Audit()
    _engine(eng, audit).deploy(HERE / "execution_listeners.bpmn")
    inst = eng.start("listened", variables={"amount": 500})
    assert audit.calls[-4:] == [
        ("take", "Flow_high"),
        ("start", "Review"),
        ("create", "Review"),
        ("assignment", "Review"),  # created with camunda:assignee
    ]
    assert eng.get_instance(inst.id).waiting_at == ["Review"]
    audit.calls.clear()
    audit.contexts.clear()
    eng.complete_task(inst.id, "Review", variables={"ok": True})
    assert audit.calls == [("complete", "Review"), ("end", "Review"), ("end", "listened")]
    # The complete listener sees what the completion set.
    assert audit.contexts[0].variables["ok"] is True
    assert eng.get_instance(inst.id).variables["seen_complete"] == 1


def test_cancelled_user_task_fires_delete_and_end(eng: ProcessEngine, clock: ManualClock) -> None:
    audit = Audit()
    _engine(eng, audit).deploy(HERE / "listeners_boundary.bpmn")
    inst = eng.start("timed_review")
    assert audit.calls == [("start", "Stage"), ("create", "Approve")]
    audit.calls.clear()
    clock.advance(3601)
    eng.run_jobs()
    assert ("delete", "Approve") in audit.calls
    assert audit.calls.index(("delete", "Approve")) < audit.calls.index(("end", "Approve"))
    assert ("end", "Stage") in audit.calls
    assert ("start", "Timeout") in audit.calls
    assert eng.get_instance(inst.id).state == "completed"


def test_listener_of_unregistered_handler_fails_deploy(make_engine: Any) -> None:
    eng = make_engine()
    eng.register_handler("work", lambda ctx: None)
    with pytest.raises(DeploymentError) as err:
        eng.deploy(HERE / "execution_listeners.bpmn")
    text = str(err.value)
    assert "execution_listeners.bpmn" in text and "'audit'" in text and "Review" in text
    lazy = make_engine(lazy_handlers=True)
    lazy.register_handler("work", lambda ctx: None)
    assert lazy.deploy(HERE / "execution_listeners.bpmn").process_keys == ("listened",)


def _failing(ctx: TaskContext) -> None:
    raise RuntimeError(f"listener down at {ctx.activity_id}")


def test_failing_start_listener_of_service_task_goes_through_async_on_error(
    eng: ProcessEngine,
) -> None:
    eng.register_handler("audit", _failing)
    calls: list[str] = []
    eng.register_handler("work", lambda ctx: calls.append("work") or None)
    eng.deploy(_single_task_model("start"))
    inst = eng.start("one")
    assert calls == []  # the start listener failed before the handler
    got = eng.get_instance(inst.id)
    assert got.state == "active" and got.waiting_at == ["Task"]
    jobs = eng.jobs(inst.id)
    assert len(jobs) == 1 and "listener down at Task" in (jobs[0].last_error or "")
    assert "camunda:executionListener (start" in (jobs[0].last_error or "")


def test_failing_end_listener_discards_the_attempt(make_engine: Any) -> None:
    eng = make_engine(async_on_error=False)
    eng.register_handler("audit", _failing)
    eng.register_handler("work", lambda ctx: {"x": 1})
    eng.deploy(_single_task_model("end"))
    with pytest.raises(HandlerError, match="listener down at Task"):
        eng.start("one")
    assert eng.instances(process_key="one") == []


def test_failing_user_task_listener_fails_the_call(eng: ProcessEngine) -> None:
    eng.register_handler("audit", _failing)
    eng.register_handler("work", lambda ctx: None)
    eng.deploy(HERE / "execution_listeners.bpmn")
    with pytest.raises(HandlerError, match="listener down"):
        eng.start("listened", variables={"amount": 50})
    assert eng.instances(process_key="listened") == []


def test_listener_fields_reach_the_handler_as_properties(eng: ProcessEngine) -> None:
    seen: list[TaskContext] = []
    eng.register_handler("audit", lambda ctx: seen.append(ctx) or None)
    eng.register_handler("work", lambda ctx: None)
    fields = (
        '<camunda:field name="channel"><camunda:string>ops</camunda:string></camunda:field>'
        '<camunda:field name="total" expression="${amount * 2}" />'
    )
    eng.deploy(_single_task_model("start", fields=fields))
    eng.start("one", variables={"amount": 4})
    assert seen[0].properties == {"channel": "ops", "total": 8}
    assert seen[0].event == "start" and seen[0].process_key == "one"


@pytest.mark.parametrize(
    ("listener", "reason"),
    [
        (
            '<camunda:executionListener event="start"><camunda:script scriptFormat="groovy" '
            'resource="classpath://x.groovy" /></camunda:executionListener>',
            "resource 'classpath://x.groovy'",
        ),
        (
            '<camunda:executionListener event="take" class="audit" />',
            "event 'take' cannot fire on a serviceTask",
        ),
        ('<camunda:taskListener event="create" class="audit" />', "belongs on a user task"),
        ('<camunda:executionListener event="start" />', "none of class"),
    ],
)
def test_listeners_that_cannot_run_are_refused(
    eng: ProcessEngine, listener: str, reason: str
) -> None:
    eng.register_handler("audit", lambda ctx: None)
    eng.register_handler("work", lambda ctx: None)
    xml = _single_task_model("start").replace(
        b'<camunda:executionListener class="audit" event="start" />', listener.encode()
    )
    with pytest.raises(DeploymentError) as err:
        eng.deploy(xml)
    assert reason in str(err.value) and "'Task'" in str(err.value)


def _single_task_model(event: str, fields: str = "") -> bytes:
    listener = (
        f'<camunda:executionListener class="audit" event="{event}">{fields}'
        "</camunda:executionListener>"
        if fields
        else f'<camunda:executionListener class="audit" event="{event}" />'
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Definitions_1"
  targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler" exporterVersion="5.28.0">
  <bpmn:process id="one" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="StartEvent_1" targetRef="Task" />
    <bpmn:serviceTask id="Task" camunda:class="work">
      <bpmn:extensionElements>
        {listener}
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="Task" targetRef="EndEvent_1" />
    <bpmn:endEvent id="EndEvent_1"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>""".encode()


def test_claim_and_set_assignee_fire_assignment_listeners(eng: ProcessEngine) -> None:
    audit = Audit()
    _engine(eng, audit).deploy(HERE / "execution_listeners.bpmn")
    inst = eng.start("listened", variables={"amount": 500})
    [task] = eng.tasks(instance_id=inst.id)
    audit.calls.clear()
    eng.unclaim(task.id)
    assert audit.calls == []  # no assignee: no assignment event
    eng.claim(task.id, "ann")
    eng.set_assignee(task.id, "bob")
    assert audit.calls == [("assignment", "Review"), ("assignment", "Review")]
    assert eng.get_instance(inst.id).variables["seen_assignment"] == 2
