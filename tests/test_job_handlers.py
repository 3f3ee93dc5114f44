"""A job executor only acquires jobs it can run: a job whose handler it lacks stays untouched
for an executor that has it."""

from __future__ import annotations

from collections.abc import Callable

from engine import ProcessEngine, TaskContext
from engine.testing import ManualClock
from tests.bpmnbuild import process, service

FLOW = process("p", service("Charge", "charge"))


def test_a_job_waits_for_an_executor_with_its_handler(
    make_engine: Callable[..., ProcessEngine], clock: ManualClock
) -> None:
    calls: list[int] = []

    def charge(ctx: TaskContext) -> dict[str, bool]:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise ConnectionError("gateway down")
        return {"charged": True}

    with_handler = make_engine()
    with_handler.register_handler("charge", charge)
    with_handler.deploy(FLOW)
    inst = with_handler.start("p")
    [before] = with_handler.jobs(inst.id)
    clock.advance(3600)

    other = make_engine()
    other.register_handler("something-else", lambda ctx: None)
    bare = make_engine()
    assert other.run_jobs() == 0 and bare.run_jobs() == 0
    [after] = bare.jobs(inst.id)
    assert after == before  # not locked, no attempt counted, no incident
    assert bare.incidents(inst.id) == []
    assert bare.store.next_due_job(bare.registered_handlers()) is None

    assert with_handler.run_jobs() == 1
    assert with_handler.get_instance(inst.id).state == "completed" and calls == [1, 2]


def test_jobs_that_need_no_handler_run_anywhere(
    make_engine: Callable[..., ProcessEngine], clock: ManualClock
) -> None:
    timer = (
        '<bpmn:intermediateCatchEvent id="Wait"><bpmn:timerEventDefinition>'
        '<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">PT1M</bpmn:timeDuration>'
        "</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
    )
    eng = make_engine()
    eng.deploy(process("t", timer))
    inst = eng.start("t")
    assert inst.waiting_at == ["Wait"]
    clock.advance(61)
    assert make_engine().run_jobs() == 1  # no handler registered, the timer fires
    assert eng.get_instance(inst.id).state == "completed"
