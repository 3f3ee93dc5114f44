"""An escalation rethrown from an event subprocess goes to the scopes around it (Camunda's own
test ``EscalationEventSubprocessTest.testReThrowEscalationEventToBoundaryEvent``)."""

from __future__ import annotations

from pathlib import Path

from engine import ProcessEngine

MODEL = (
    Path(__file__).parent
    / "bpmn"
    / "public"
    / "camunda-bpm-platform"
    / "EscalationEventSubprocessTest.testReThrowEscalationEventToBoundaryEvent.bpmn20.xml"
)


def test_rethrown_escalation_is_caught_by_the_boundary_of_the_subprocess(
    eng: ProcessEngine,
) -> None:
    eng.deploy(MODEL)
    inst = eng.start("escalationProcess")
    assert eng.get_instance(inst.id).waiting_at == [
        "taskAfterCatchedEscalationInsideSubprocess",
        "taskInSubprocess",
    ]
    eng.complete_task(inst.id, "taskAfterCatchedEscalationInsideSubprocess")
    got = eng.get_instance(inst.id)
    # As Camunda asserts: the task in the subprocess and the one after the boundary event.
    assert got.waiting_at == ["taskAfterCatchedEscalation", "taskInSubprocess"]
    passed = [h.activity_id for h in eng.history(inst.id)]
    assert passed.count("taskAfterCatchedEscalationInsideSubprocess") == 1
    eng.complete_task(inst.id, "taskAfterCatchedEscalation")
    eng.complete_task(inst.id, "taskInSubprocess")
    assert eng.get_instance(inst.id).state == "completed"
