"""Operating running instances: cancel, suspend/activate, set/remove variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import (
    EngineError,
    InstanceSuspended,
    InvalidVariables,
    NotFound,
    ProcessEngine,
    TaskContext,
)
from engine.testing import ManualClock
from tests.bpmnbuild import catch_message, process, service, user

MESSAGE = '<bpmn:message id="Msg_Paid" name="Paid" />'


def busy_process() -> bytes:
    """A user task, an external task, a timer and a message catch waiting at once, plus a
    call activity whose child waits at a user task."""
    return process(
        "busy",
        '<bpmn:parallelGateway id="Fork" />',
        user("Approve"),
        service("Bill", extra='camunda:type="external" camunda:topic="billing"'),
        '<bpmn:intermediateCatchEvent id="Wait"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>",
        catch_message("Paid", "Msg_Paid"),
        '<bpmn:callActivity id="Child" calledElement="child" />',
        '<bpmn:parallelGateway id="Join" />',
        flows=[
            ("StartEvent_1", "Fork"),
            *[(("Fork", x)) for x in ("Approve", "Bill", "Wait", "Paid", "Child")],
            *[((x, "Join")) for x in ("Approve", "Bill", "Wait", "Paid", "Child")],
            ("Join", "EndEvent_1"),
        ],
        definitions=MESSAGE,
    )


CHILD = process("child", user("ChildTask"))


def deploy_busy(eng: ProcessEngine, folder: Path) -> None:
    (folder / "busy.bpmn").write_bytes(busy_process())
    (folder / "child.bpmn").write_bytes(CHILD)
    eng.deploy([folder / "busy.bpmn", folder / "child.bpmn"])


def test_cancel_removes_all_work_and_records_why(eng: ProcessEngine, tmp_path: Path) -> None:
    deploy_busy(eng, tmp_path)
    inst = eng.start("busy", {"order": 7})
    assert set(inst.waiting_at) >= {"Approve", "Bill", "Wait", "Paid", "ChildTask"}
    [ext] = eng.external_tasks.fetch_and_lock("w1", topics=["billing"])
    assert eng.jobs(inst.id) and len(eng.tasks(instance_id=inst.id)) == 2

    done = eng.cancel(inst.id, reason="customer withdrew", user="ops-anna")
    assert done.state == "terminated" and done.waiting_at == []
    again = eng.get_instance(inst.id)
    assert again.state == "terminated" and again.ended_at is not None
    assert again.variables == {"order": 7}
    assert eng.jobs(inst.id) == []
    assert eng.external_tasks.list(instance_id=inst.id) == []
    assert eng.tasks(instance_id=inst.id) == []
    with eng.store.transaction(write=False) as conn:
        subs = conn.exec_driver_sql(
            "SELECT count(*) FROM sw_subscriptions WHERE instance_id = %s"
            if eng.store.dialect == "postgresql"
            else "SELECT count(*) FROM sw_subscriptions WHERE instance_id = ?",
            (inst.id,),
        ).scalar_one()
    assert subs == 0
    history = eng.history(inst.id)
    last = history[-1]
    assert (last.activity_type, last.outcome) == ("processInstance", "cancelled")
    assert last.error == "cancelled by ops-anna: customer withdrew"
    assert all(h.ended_at is not None for h in history)
    assert {h.activity_id for h in history if h.outcome == "cancelled"} >= {"Approve", "Bill"}
    # The worker finishing afterwards gets the duplicate answer, and nothing comes back.
    assert eng.external_tasks.complete(ext.id, "w1", variables={"x": 1}) is False
    assert eng.get_instance(inst.id).state == "terminated"
    with pytest.raises(NotFound, match="has ended"):
        eng.complete_task(inst.id, "Approve")
    with pytest.raises(NotFound, match="has ended"):
        eng.cancel(inst.id)


def test_cancel_a_suspended_instance_and_bad_input(eng: ProcessEngine) -> None:
    eng.deploy(process("p", user("A")))
    inst = eng.start("p")
    eng.suspend(inst.id)
    assert eng.cancel(inst.id).state == "terminated"  # an operator may end a suspended one
    with pytest.raises(NotFound):
        eng.cancel("no-such-instance")
    with pytest.raises(EngineError, match="reason must be text"):
        eng.cancel(eng.start("p").id, reason=3)  # type: ignore[arg-type]


def test_suspended_instance_runs_nothing_until_activated(
    make_engine: object, clock: ManualClock
) -> None:
    eng: ProcessEngine = make_engine()  # type: ignore[operator]
    other: ProcessEngine = make_engine()  # type: ignore[operator]  # a second node
    calls: list[str] = []

    def work(ctx: TaskContext) -> None:
        calls.append(ctx.instance_id)

    for node in (eng, other):
        node.register_handler("work", work)
    xml = process(
        "timed",
        '<bpmn:intermediateCatchEvent id="Wait"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT10M</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>",
        service("Work", "work", extra='camunda:asyncBefore="true"'),
        service("Ext", extra='camunda:type="external" camunda:topic="t"'),
        user("Review"),
        catch_message("Paid", "Msg_Paid"),
        definitions=MESSAGE,
    )
    eng.deploy(xml)
    inst = eng.start("timed")
    running = eng.start("timed")
    assert eng.suspend(inst.id).suspended is True
    assert eng.get_instance(inst.id).suspended
    assert eng.suspend(inst.id).suspended is True  # again: no change
    clock.advance(3600)
    assert other.run_jobs() == 2  # the timer and the async job of the running one only
    assert eng.run_jobs() == 0 and calls == [running.id]
    assert other.external_tasks.fetch_and_lock("w", topics=["t"])[0].instance_id == running.id
    with pytest.raises(InstanceSuspended, match="suspended"):
        eng.set_variables(inst.id, {"a": 1})
    with pytest.raises(InstanceSuspended):
        eng.complete_task(inst.id, "Review")

    # Activated: the timer that fell due meanwhile fires, then its async job runs.
    assert eng.activate(inst.id).suspended is False
    assert other.run_jobs() == 2
    assert calls == [running.id, inst.id]
    assert [t.instance_id for t in other.external_tasks.fetch_and_lock("w", topics=["t"])] == [
        inst.id
    ]


def test_suspended_instance_refuses_messages_and_task_completion(eng: ProcessEngine) -> None:
    eng.deploy(process("pay", catch_message("Paid", "Msg_Paid"), user("A"), definitions=MESSAGE))
    inst = eng.start("pay", business_key="B-1")
    eng.suspend(inst.id)
    with pytest.raises(InstanceSuspended):
        eng.correlate_message("Paid", business_key="B-1")
    assert eng.get_instance(inst.id).waiting_at == ["Paid"]
    eng.activate(inst.id)
    assert eng.correlate_message("Paid", business_key="B-1").waiting_at == ["A"]
    with pytest.raises(NotFound):
        eng.suspend("missing")


def test_suspended_claim_is_refused(eng: ProcessEngine) -> None:
    eng.deploy(process("p", user("A")))
    inst = eng.start("p")
    [task] = eng.tasks(instance_id=inst.id)
    eng.suspend(inst.id)
    with pytest.raises(InstanceSuspended):
        eng.claim(task.id, "mary")
    eng.activate(inst.id)
    assert eng.claim(task.id, "mary").assignee == "mary"


def test_set_and_remove_variables_with_history(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(process("p", user("A"), user("B")))
    inst = eng.start("p", {"amount": 30, "note": "x"})
    changed = eng.set_variables(inst.id, {"amount": 45, "tags": ["vip"]}, user="ops")
    assert changed.variables == {"amount": 45, "note": "x", "tags": ["vip"]}
    clock.advance(5)
    assert eng.remove_variables(inst.id, ["note"]).variables == {"amount": 45, "tags": ["vip"]}
    # The change reaches what follows: the next task and the end.
    eng.complete_task(inst.id, "A")
    assert eng.get_instance(inst.id).variables == {"amount": 45, "tags": ["vip"]}
    done = eng.complete_task(inst.id, "B")
    assert done.state == "completed" and done.variables == {"amount": 45, "tags": ["vip"]}
    changes = eng.variable_history(inst.id)
    assert [(c.name, c.operation, c.value, c.user) for c in changes] == [
        ("amount", "set", 45, "ops"),
        ("tags", "set", ["vip"], "ops"),
        ("note", "removed", None, None),
    ]
    assert changes[2].at > changes[0].at


def test_variables_bad_input_changes_nothing(eng: ProcessEngine) -> None:
    eng.deploy(process("p", user("A")))
    inst = eng.start("p", {"a": 1})
    with pytest.raises(InvalidVariables, match="'bad'"):
        eng.set_variables(inst.id, {"bad": object()})
    with pytest.raises(InvalidVariables, match="no variable 'zz'"):
        eng.remove_variables(inst.id, ["a", "zz"])
    with pytest.raises(InvalidVariables, match="list of variable names"):
        eng.remove_variables(inst.id, "a")  # type: ignore[arg-type]
    with pytest.raises(InvalidVariables, match="no variables"):
        eng.set_variables(inst.id, {})
    with pytest.raises(NotFound):
        eng.set_variables("nope", {"a": 2})
    with pytest.raises(NotFound):
        eng.variable_history("nope")
    assert eng.get_instance(inst.id).variables == {"a": 1}
    assert eng.variable_history(inst.id) == []


def test_update_variables_sets_and_removes_in_one_transaction(eng: ProcessEngine) -> None:
    eng.deploy(process("p", user("A")))
    inst = eng.start("p", {"a": 1, "b": 2})
    rev = eng.store.instance(inst.id)["rev"]
    # A refused removal leaves the sets of the same call unapplied: nothing was written.
    with pytest.raises(InvalidVariables, match="no variable 'zz'"):
        eng.update_variables(inst.id, {"c": 3}, ["b", "zz"])
    with pytest.raises(InvalidVariables, match="'bad'"):
        eng.update_variables(inst.id, {"bad": object()}, ["b"])
    with pytest.raises(InvalidVariables, match="nothing|no variables"):
        eng.update_variables(inst.id, {}, [])
    assert eng.get_instance(inst.id).variables == {"a": 1, "b": 2}
    assert eng.store.instance(inst.id)["rev"] == rev and eng.variable_history(inst.id) == []
    # Sets first, then removals (Camunda's order): a name in both ends up removed.
    done = eng.update_variables(inst.id, {"a": 10, "c": 3}, ["b", "c"], user="ops")
    assert done.variables == {"a": 10}
    assert eng.store.instance(inst.id)["rev"] == rev + 1
    changes = [(c.name, c.operation, c.user) for c in eng.variable_history(inst.id)]
    assert changes == [
        ("a", "set", "ops"),
        ("c", "set", "ops"),
        ("b", "removed", "ops"),
        ("c", "removed", "ops"),
    ]
    assert eng.complete_task(inst.id, "A").variables == {"a": 10}


def test_set_variables_steers_a_later_gateway(eng: ProcessEngine) -> None:
    xml = process(
        "route",
        user("A"),
        '<bpmn:exclusiveGateway id="G" />',
        user("Big"),
        user("Small"),
        flows=[
            ("StartEvent_1", "A"),
            ("A", "G"),
            ("G", "Big", "${amount > 100}"),
            ("G", "Small", "${amount <= 100}"),
            ("Big", "EndEvent_1"),
            ("Small", "EndEvent_1"),
        ],
    )
    eng.deploy(xml)
    inst = eng.start("route", {"amount": 10})
    eng.set_variables(inst.id, {"amount": 500})
    assert eng.complete_task(inst.id, "A").waiting_at == ["Big"]


def test_execute_job_of_a_suspended_instance_is_refused(eng: ProcessEngine) -> None:
    eng.register_handler("work", lambda ctx: None)
    eng.deploy(process("later", service("Work", "work", extra='camunda:asyncBefore="true"')))
    inst = eng.start("later")
    [job] = eng.jobs(inst.id)
    eng.suspend(inst.id)
    with pytest.raises(InstanceSuspended):
        eng.execute_job(job.id)
    eng.activate(inst.id)
    eng.execute_job(job.id)
    assert eng.get_instance(inst.id).state == "completed"


def test_cancel_inside_an_embedded_subprocess(eng: ProcessEngine) -> None:
    sub = (
        '<bpmn:subProcess id="Sub"><bpmn:startEvent id="SubStart" />'
        '<bpmn:userTask id="Inner" /><bpmn:endEvent id="SubEnd" />'
        '<bpmn:sequenceFlow id="s1" sourceRef="SubStart" targetRef="Inner" />'
        '<bpmn:sequenceFlow id="s2" sourceRef="Inner" targetRef="SubEnd" /></bpmn:subProcess>'
    )
    eng.deploy(process("nested", sub, user("After")))
    inst = eng.start("nested")
    assert [t.activity_id for t in eng.tasks(instance_id=inst.id)] == ["Inner"]
    moved = eng.modify(inst.id, cancel=["Sub"], start_before=["After"])
    assert moved.waiting_at == ["After"]
    assert [t.activity_id for t in eng.tasks(instance_id=inst.id)] == ["After"]
    done = eng.cancel(inst.id)
    assert done.state == "terminated" and eng.tasks(instance_id=inst.id) == []
