"""Moving tokens (modify) and moving instances to another version (migrate)."""

from __future__ import annotations

import pytest

from engine import EngineError, InvalidOperation, ProcessEngine, TaskContext
from engine.testing import ManualClock
from tests.bpmnbuild import process, service, user

ABC = process("abc", user("A"), user("B"), user("C"))


def test_skip_a_stuck_step(eng: ProcessEngine) -> None:
    eng.deploy(ABC)
    inst = eng.start("abc", {"x": 1})
    moved = eng.modify(inst.id, start_before=["C"], cancel=["A"])
    assert moved.waiting_at == ["C"] and moved.variables == {"x": 1}
    assert [t.activity_id for t in eng.tasks(instance_id=inst.id)] == ["C"]
    assert eng.complete_task(inst.id, "C").state == "completed"
    outcomes = [(h.activity_id, h.outcome) for h in eng.history(inst.id)]
    assert ("A", "cancelled") in outcomes and ("B", "completed") not in outcomes


def test_rerun_a_step_that_ran(eng: ProcessEngine) -> None:
    calls: list[int] = []
    eng.register_handler("charge", lambda ctx: calls.append(1) or {"charged": len(calls)})
    eng.deploy(process("pay", service("Charge", "charge"), user("Check")))
    inst = eng.start("pay")
    assert calls == [1]
    again = eng.modify(inst.id, start_before=["Charge"], cancel=["Check"])
    assert calls == [1, 1]  # the handler ran again, in the same call
    assert again.waiting_at == ["Check"] and again.variables == {"charged": 2}


def test_add_a_parallel_token_and_cancel_the_last_one(eng: ProcessEngine) -> None:
    eng.deploy(ABC)
    inst = eng.start("abc")
    both = eng.modify(inst.id, start_before=["C"])
    assert both.waiting_at == ["A", "C"]
    left = eng.modify(inst.id, cancel=["A", "C"])
    assert left.state == "terminated"
    assert eng.tasks(instance_id=inst.id) == []


def test_refusals_name_the_activity_and_change_nothing(eng: ProcessEngine) -> None:
    eng.deploy(
        process(
            "mi",
            user("A"),
            '<bpmn:userTask id="Each"><bpmn:multiInstanceLoopCharacteristics '
            'camunda:collection="${items}" camunda:elementVariable="item" /></bpmn:userTask>',
            '<bpmn:boundaryEvent id="Late" attachedToRef="A"><bpmn:timerEventDefinition>'
            "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
            "</bpmn:boundaryEvent>",
            flows=[
                ("StartEvent_1", "A"),
                ("A", "Each"),
                ("Each", "EndEvent_1"),
                ("Late", "EndEvent_1"),
            ],
        )
    )
    inst = eng.start("mi", {"items": [1, 2]})
    before = eng.store.instance(inst.id)
    cases = {
        "Each": "multi-instance",
        "Nope": "does not exist",
        "Late": "boundary event",
        "StartEvent_1": "start event",
    }
    for activity, reason in cases.items():
        with pytest.raises(InvalidOperation, match=f"'{activity}'.*{reason}"):
            eng.modify(inst.id, start_before=[activity], cancel=["A"])
    with pytest.raises(InvalidOperation, match="'EndEvent_1' has no token"):
        eng.modify(inst.id, cancel=["EndEvent_1"])
    with pytest.raises(EngineError, match="list of activity ids"):
        eng.modify(inst.id, start_before="A")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="give start_before"):
        eng.modify(inst.id)
    assert eng.store.instance(inst.id) == before  # nothing half-applied
    eng.complete_task(inst.id, "A")
    with pytest.raises(InvalidOperation, match="'Each'.*multi-instance"):
        eng.modify(inst.id, cancel=["Each"])


def test_modify_a_failing_start_commits_nothing(eng: ProcessEngine) -> None:
    def boom(ctx: TaskContext) -> None:
        raise RuntimeError("down")

    eng.register_handler("boom", boom)
    eng.deploy(process("f", user("A"), service("B", "boom")))
    eng2 = ProcessEngine(
        eng.store.url.render_as_string(hide_password=False), async_on_error=False, clock=eng.clock
    )
    eng2.register_handler("boom", boom)
    inst = eng.start("f")
    before = eng.store.instance(inst.id)
    with pytest.raises(EngineError, match="down"):
        eng2.modify(inst.id, start_before=["B"], cancel=["A"])
    assert eng.store.instance(inst.id) == before
    eng2.close()


# -- migration -------------------------------------------------------------------------


def v1() -> bytes:
    return process(
        "order",
        '<bpmn:userTask id="Approve" camunda:assignee="boss" />',
        '<bpmn:intermediateCatchEvent id="Cool"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>",
        service("Bill", extra='camunda:type="external" camunda:topic="billing"'),
        user("Ship"),
    )


def v2(approve: str = "Approve", cool: str = "Cool") -> bytes:
    """Version 2: a new step between billing and shipping, optionally renamed ids."""
    return process(
        "order",
        f'<bpmn:userTask id="{approve}" camunda:assignee="boss" />',
        f'<bpmn:intermediateCatchEvent id="{cool}"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT2H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>",
        service("Bill", extra='camunda:type="external" camunda:topic="billing"'),
        user("Pack"),
        user("Ship"),
    )


def test_migrate_same_ids(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(v1())
    at_approve = eng.start("order")
    at_bill = eng.start("order")
    eng.complete_task(at_bill.id, "Approve")
    clock.advance(3601)
    eng.run_jobs()
    at_cool = eng.start("order")
    eng.complete_task(at_cool.id, "Approve")
    [locked] = eng.external_tasks.fetch_and_lock("w1", topics=["billing"])
    eng.set_assignee(eng.tasks(instance_id=at_approve.id)[0].id, "mary")
    timer_due = eng.jobs(at_cool.id)[0].due_at
    assert eng.deploy(v2()).versions["order"] == 2

    moved = eng.migrate([at_approve.id, at_cool.id, at_bill.id], to_version=2)
    assert [m.version for m in moved] == [2, 2, 2]
    assert eng.get_instance(at_approve.id).version == 2
    [task] = eng.tasks(instance_id=at_approve.id)
    assert task.assignee == "mary"  # the user task followed, its assignee kept
    assert eng.jobs(at_cool.id)[0].due_at == timer_due  # the timer kept its due date
    # The worker's lock holds across the migration; completing moves on in version 2.
    assert eng.external_tasks.complete(locked.id, "w1") is True
    assert eng.get_instance(at_bill.id).waiting_at == ["Pack"]
    eng.complete_task(at_approve.id, "Approve")
    clock.advance(3601)
    eng.run_jobs()
    assert eng.get_instance(at_cool.id).waiting_at == ["Bill"]


def test_migrate_with_mapping_for_renamed_activities(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(v1())
    a = eng.start("order")
    b = eng.start("order")
    eng.complete_task(b.id, "Approve")
    eng.deploy(v2(approve="Review", cool="Pause"))
    with pytest.raises(InvalidOperation) as refused:
        eng.migrate([a.id, b.id], to_version=2)
    problems = refused.value.problems
    assert any("'Approve'" in p and a.id in p for p in problems)
    assert any("'Cool'" in p and b.id in p for p in problems)
    assert eng.get_instance(a.id).version == 1 and eng.get_instance(b.id).version == 1

    eng.migrate([a.id, b.id], to_version=2, mapping={"Approve": "Review", "Cool": "Pause"})
    assert eng.get_instance(a.id).waiting_at == ["Review"]
    assert [t.activity_id for t in eng.tasks(instance_id=a.id)] == ["Review"]
    assert [j.activity_id for j in eng.jobs(b.id)] == ["Pause"]
    assert eng.complete_task(a.id, "Review").waiting_at == ["Pause"]
    clock.advance(3601)  # b's timer keeps its v1 due date (1 hour)
    eng.run_jobs()
    assert eng.get_instance(b.id).waiting_at == ["Bill"]


def test_migration_plan_is_refused_as_a_whole(eng: ProcessEngine) -> None:
    eng.deploy(v1())
    fine = eng.start("order")
    done = eng.start("order")
    eng.cancel(done.id)
    eng.deploy(
        process(
            "order",
            service("Approve", extra='camunda:type="external" camunda:topic="x"'),
            user("Ship"),
        )
    )
    with pytest.raises(InvalidOperation) as refused:
        eng.migrate(
            [fine.id, done.id, "ghost"], to_version=2, mapping={"Nope": "Ship", "Ship": "Gone"}
        )
    text = "\n".join(refused.value.problems)
    assert "has ended" in text
    assert "no process instance with id 'ghost'" in text
    assert "mapping names 'Nope'" in text and "mapping targets 'Gone'" in text
    assert "'Approve'" in text  # a user task there is a service task in version 2
    with pytest.raises(InvalidOperation, match="no version 9"):
        eng.migrate([fine.id], to_version=9)
    with pytest.raises(EngineError, match="list of instance ids"):
        eng.migrate(fine.id, to_version=2)  # type: ignore[arg-type]
    assert eng.get_instance(fine.id).version == 1


def test_two_engines_migrate_and_complete(make_engine: object) -> None:
    first: ProcessEngine = make_engine()  # type: ignore[operator]
    second: ProcessEngine = make_engine()  # type: ignore[operator]
    first.deploy(v1())
    inst = first.start("order")
    first.deploy(v2())
    second.migrate([inst.id], to_version=2)
    assert first.complete_task(inst.id, "Approve").version == 2
    with pytest.raises(InvalidOperation, match="no process instance with id 'x'"):
        second.migrate([inst.id, "x"], to_version=1)
    assert first.get_instance(inst.id).version == 2
