"""User tasks as rows: created with the token, attributes evaluated then, gone when it leaves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import EngineError, ExpressionError, NotFound, ProcessEngine, TaskClaimed
from engine.testing import ManualClock
from tests.bpmnbuild import process, user


def approval(**attrs: str) -> bytes:
    extra = " ".join(f'camunda:{k}="{v}"' for k, v in attrs.items())
    return process(
        "approval",
        f'<bpmn:userTask id="Approve" name="Approve order" {extra} />',
        user("Ship"),
    )


def test_row_written_with_evaluated_attributes(eng: ProcessEngine) -> None:
    eng.deploy(
        approval(
            assignee="${initiator}",
            candidateUsers="mary, ${deputy}",
            candidateGroups="=[&quot;sales&quot;, region]",
            dueDate="${due}",
            followUpDate="2026-12-20T09:00:00Z",
            priority="=base + 10",
            formKey="embedded:app:forms/approve.html",
        )
    )
    inst = eng.start(
        "approval",
        {
            "initiator": "john",
            "deputy": "pete",
            "region": "north",
            "due": "2026-12-24T10:00:00+01:00",
            "base": 5,
        },
    )
    [task] = eng.tasks(instance_id=inst.id)
    assert task.activity_id == "Approve"
    assert task.name == "Approve order"
    assert task.assignee == "john"
    assert task.candidate_users == ["mary", "pete"]
    assert task.candidate_groups == ["sales", "north"]
    assert task.due_at == datetime(2026, 12, 24, 9, 0, tzinfo=UTC)
    assert task.follow_up_at == datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    assert task.priority == 15
    assert task.form_key == "embedded:app:forms/approve.html"
    assert task.created_at == eng.clock.now()
    assert task.process_key == "approval"


def test_completing_removes_the_row_and_the_next_task_gets_one(eng: ProcessEngine) -> None:
    eng.deploy(approval())
    inst = eng.start("approval")
    [first] = eng.tasks(instance_id=inst.id)
    assert first.priority == 50 and first.assignee is None  # Camunda's defaults
    eng.complete_task(inst.id, "Approve")
    [second] = eng.tasks(instance_id=inst.id)
    assert second.activity_id == "Ship" and second.id != first.id
    eng.complete_task(inst.id, "Ship")
    assert eng.tasks(instance_id=inst.id) == []


def test_interrupting_boundary_timer_removes_the_row(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    xml = process(
        "esc",
        '<bpmn:userTask id="Review" camunda:assignee="ann" />',
        '<bpmn:boundaryEvent id="Late" attachedToRef="Review"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:boundaryEvent>",
        user("Escalated"),
        flows=[
            ("StartEvent_1", "Review"),
            ("Review", "EndEvent_1"),
            ("Late", "Escalated"),
            ("Escalated", "EndEvent_1"),
        ],
    )
    eng.deploy(xml)
    inst = eng.start("esc")
    assert [t.activity_id for t in eng.tasks(assignee="ann")] == ["Review"]
    clock.advance(3601)
    eng.run_jobs()
    assert eng.tasks(assignee="ann") == []
    assert [t.activity_id for t in eng.tasks(instance_id=inst.id)] == ["Escalated"]


def test_filters_and_order(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(approval(assignee="${who}", candidateGroups="${groups}", candidateUsers="${users}"))
    eng.deploy(process("other", '<bpmn:userTask id="T" camunda:candidateGroups="sales" />'))
    a = eng.start("approval", {"who": "", "groups": "sales", "users": "mary"})
    clock.advance(1)
    b = eng.start("approval", {"who": "john", "groups": "sales", "users": ""})
    clock.advance(1)
    c = eng.start("other")
    clock.advance(1)
    d = eng.start("approval", {"who": "", "groups": "hr", "users": ""})
    ids = lambda tasks: [t.instance_id for t in tasks]  # noqa: E731
    assert ids(eng.tasks()) == [a.id, b.id, c.id, d.id]  # oldest first
    assert ids(eng.tasks(assignee="john")) == [b.id]
    assert ids(eng.tasks(candidate_user="mary")) == [a.id]
    # Through the groups the caller says mary is in; assigned tasks are not claimable.
    assert ids(eng.tasks(candidate_user="mary", candidate_group=["sales", "hr"])) == [
        a.id,
        c.id,
        d.id,
    ]
    assert ids(eng.tasks(candidate_group="sales")) == [a.id, c.id]
    assert ids(eng.tasks(process_key="other")) == [c.id]
    assert ids(eng.tasks(process_key="approval", candidate_group="hr")) == [d.id]
    with pytest.raises(EngineError, match="candidate_group"):
        eng.tasks(candidate_group=[""])


def test_claim_unclaim_set_assignee(eng: ProcessEngine) -> None:
    eng.deploy(approval(candidateUsers="mary,pete"))
    inst = eng.start("approval")
    [task] = eng.tasks(instance_id=inst.id)
    claimed = eng.claim(task.id, "mary")
    assert claimed.assignee == "mary"
    assert eng.claim(task.id, "mary").assignee == "mary"  # claiming again: no change
    with pytest.raises(TaskClaimed, match="claimed by 'mary'"):
        eng.claim(task.id, "pete")
    assert eng.tasks(assignee="mary")[0].id == task.id
    assert eng.tasks(candidate_user="pete") == []
    assert eng.unclaim(task.id).assignee is None
    assert eng.claim(task.id, "pete").assignee == "pete"
    assert eng.set_assignee(task.id, "boss").assignee == "boss"  # whoever held it
    assert eng.set_assignee(task.id, None).assignee is None
    with pytest.raises(EngineError, match="non-empty user id"):
        eng.claim(task.id, "")
    with pytest.raises(NotFound, match="no open user task"):
        eng.claim("nope", "mary")
    eng.complete_task(inst.id, "Approve")
    with pytest.raises(NotFound):
        eng.claim(task.id, "mary")


def test_bad_expression_fails_the_call_naming_element_and_attribute(eng: ProcessEngine) -> None:
    eng.deploy(approval(dueDate="${due}"))
    with pytest.raises(ExpressionError, match=r"element 'Approve': camunda:dueDate"):
        eng.start("approval", {"due": "next tuesday"})
    assert eng.instances() == []  # nothing committed


def test_zeebe_style_feel_attributes(eng: ProcessEngine) -> None:
    eng.deploy(
        approval(
            assignee="=owner.name",
            candidateGroups="=[team, &quot;board&quot;]",
        )
    )
    inst = eng.start("approval", {"owner": {"name": "kim"}, "team": "ops"})
    [task] = eng.tasks(instance_id=inst.id)
    assert task.assignee == "kim" and task.candidate_groups == ["ops", "board"]


def test_two_engines_one_claim_wins(make_engine: object) -> None:
    first = make_engine()  # type: ignore[operator]
    second = make_engine()  # type: ignore[operator]
    first.deploy(approval())
    inst = first.start("approval")
    [task] = second.tasks(instance_id=inst.id)
    first.claim(task.id, "mary")
    with pytest.raises(TaskClaimed):
        second.claim(task.id, "pete")
    assert second.tasks(instance_id=inst.id)[0].assignee == "mary"
