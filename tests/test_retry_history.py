"""History rows and job fields around retries: each attempt's row says when it ran, and a
job's ``attempts`` counts the synchronous attempt too."""

from __future__ import annotations

from datetime import timedelta

from engine import ProcessEngine, TaskContext
from engine.testing import ManualClock
from tests.bpmnbuild import process, service


def test_each_attempt_has_its_own_start_and_end(eng: ProcessEngine, clock: ManualClock) -> None:
    calls: list[int] = []

    def flaky(ctx: TaskContext) -> dict[str, int]:
        calls.append(ctx.attempt)
        if len(calls) < 3:
            raise ConnectionError("gateway down")
        return {"ok": 1}

    eng.register_handler("flaky", flaky)
    eng.deploy(process("p", service("A", "flaky")))
    t0 = clock.now()
    inst = eng.start("p")
    [job] = eng.jobs(inst.id)
    assert job.attempts == 1 and job.retries_left == 3  # the synchronous attempt counts
    clock.advance(30)
    t1 = clock.now()
    assert eng.run_jobs() == 1
    [job] = eng.jobs(inst.id)
    assert job.attempts == 2 and job.retries_left == 2
    clock.advance(45)
    t2 = clock.now()
    assert eng.run_jobs() == 1
    assert eng.jobs(inst.id) == [] and calls == [1, 2, 3]
    rows = [
        (h.started_at, h.ended_at, h.outcome) for h in eng.history(inst.id) if h.activity_id == "A"
    ]
    assert rows == [(t0, t0, "failed"), (t1, t1, "failed"), (t2, t2, "completed")]


def test_async_before_attempt_row_starts_when_the_job_ran(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.register_handler("work", lambda ctx: {"done": True})
    eng.deploy(process("p", service("A", "work", extra='camunda:asyncBefore="true"')))
    inst = eng.start("p")
    [job] = eng.jobs(inst.id)
    assert job.attempts == 0  # deferred: nothing ran yet
    clock.advance(timedelta(minutes=5))
    assert eng.run_jobs() == 1
    [row] = [h for h in eng.history(inst.id) if h.activity_id == "A"]
    assert row.started_at == clock.now() and row.outcome == "completed"
