"""``engine.testing`` helpers: virtual time over retries, timers and lock expiry; handlers that
fail N times."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from engine import ProcessEngine, TaskContext
from engine.testing import (
    ManualClock,
    advance_and_run,
    assert_that,
    complete_external_task,
    fails_times,
)
from tests.bpmnbuild import process, service, user

HOUR = 3600.0
DAY = 24 * HOUR

RETRY_HOURLY = (
    "<bpmn:extensionElements><camunda:failedJobRetryTimeCycle>R5/PT1H"
    "</camunda:failedJobRetryTimeCycle></bpmn:extensionElements>"
)

# Check a claim (its service retried hourly, R5/PT1H), then a person reviews it; after three
# days without a review the claim is escalated instead.
CLAIM = process(
    "claim",
    service("Check", handler="check", body=RETRY_HOURLY),
    user("Review"),
    '<bpmn:boundaryEvent id="ReviewOverdue" attachedToRef="Review">'
    "<bpmn:timerEventDefinition><bpmn:timeDuration>P3D</bpmn:timeDuration>"
    "</bpmn:timerEventDefinition></bpmn:boundaryEvent>",
    service("Escalate", handler="escalate"),
    '<bpmn:endEvent id="Escalated" />',
    flows=[
        ("StartEvent_1", "Check"),
        ("Check", "Review"),
        ("Review", "EndEvent_1"),
        ("ReviewOverdue", "Escalate"),
        ("Escalate", "Escalated"),
    ],
)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Virtual time means nothing in the engine sleeps: make any sleep fail the test."""

    def forbidden(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) during a virtual-time test")

    monkeypatch.setattr(time, "sleep", forbidden)


@pytest.fixture
def claim(process_engine: ProcessEngine) -> ProcessEngine:
    process_engine.register_handler("check", fails_times(3, result={"checked": True}))
    process_engine.register_handler("escalate", lambda ctx: {"escalated_to": "team-lead"})
    process_engine.deploy(CLAIM)
    return process_engine


@pytest.mark.usefixtures("no_sleep")
def test_hourly_retries_and_a_three_day_timer_in_virtual_time(
    claim: ProcessEngine, clock: ManualClock
) -> None:
    start = clock.now()
    inst = claim.start("claim")
    assert_that(inst).is_waiting_at("Check").has_job(at="Check", kind="async-continuation")

    # Three failures (the call itself, then +1h and +2h); the third retry, at +3h, succeeds.
    assert advance_and_run(clock, claim, 3 * HOUR) == 3
    assert_that(inst).is_waiting_exactly_at("Review").has_variables(checked=True)
    assert_that(inst).has_job(at="ReviewOverdue", kind="timer")
    checks = [h for h in claim.history(inst.id) if h.activity_id == "Check"]
    assert [h.ended_at - start for h in checks] == [timedelta(hours=n) for n in range(4)]

    # Nobody reviews for three days.
    assert advance_and_run(clock, claim, 3 * DAY - 1) == 0
    assert_that(inst).is_waiting_at("Review")
    assert advance_and_run(clock, claim, 1) == 1
    assert_that(inst).is_completed().has_passed("ReviewOverdue", "Escalate", "Escalated")
    assert_that(inst).has_not_passed("Review", "EndEvent_1").has_variables(escalated_to="team-lead")
    [overdue] = [h for h in claim.history(inst.id) if h.activity_id == "ReviewOverdue"]
    assert overdue.ended_at == start + timedelta(days=3, hours=3)


def test_reviewed_in_time_the_timer_is_gone(claim: ProcessEngine, clock: ManualClock) -> None:
    inst = claim.start("claim")
    advance_and_run(clock, claim, 3 * HOUR)
    advance_and_run(clock, claim, 2 * DAY)
    claim.complete_task(inst.id, "Review")
    assert_that(inst).is_completed().has_passed("Review").has_not_passed("ReviewOverdue")
    assert claim.jobs(inst.id) == []


def test_time_stops_at_each_due_moment(claim: ProcessEngine, clock: ManualClock) -> None:
    """One jump with clock.advance() runs one late attempt; advance_and_run runs each attempt
    at its own due time, as a real clock would have."""
    jumped = claim.start("claim")
    clock.advance(3 * HOUR)
    assert claim.run_jobs() == 1
    assert_that(jumped).is_waiting_at("Check")  # second failure; the next retry is later

    stepped = claim.start("claim")
    assert advance_and_run(clock, claim, 3 * HOUR) >= 3
    assert_that(stepped).is_waiting_exactly_at("Review")
    assert clock.now() == jumped.created_at + timedelta(hours=6)  # type: ignore[operator]


def test_a_locked_job_runs_when_its_lock_expires(
    process_engine: ProcessEngine, clock: ManualClock
) -> None:
    process_engine.register_handler("a", lambda ctx: {"done": True})
    process_engine.deploy(
        process("later", service("A", handler="a", extra='camunda:asyncBefore="true"'), user("U"))
    )
    inst = process_engine.start("later")
    # A worker took the job and died: nobody may run it before its lock expires.
    [row] = process_engine.job_runner.acquire("crashed-worker", 1)
    lock_expires_at = process_engine.jobs(inst.id)[0].lock_expires_at
    assert lock_expires_at is not None
    assert advance_and_run(clock, process_engine, 60) == 0
    assert_that(inst).is_waiting_at("A")
    assert advance_and_run(clock, process_engine, timedelta(hours=1)) == 1
    assert_that(inst).is_waiting_exactly_at("U").has_variables(done=True)
    [a] = [h for h in process_engine.history(inst.id) if h.activity_id == "A" and h.ended_at]
    assert a.ended_at == lock_expires_at
    assert row["id"]


def test_advance_and_run_only_moves_forward(
    process_engine: ProcessEngine, clock: ManualClock
) -> None:
    with pytest.raises(ValueError, match="only moves forward"):
        advance_and_run(clock, process_engine, -1)
    before = clock.now()
    assert advance_and_run(clock, process_engine, timedelta(minutes=5)) == 0
    assert clock.now() == before + timedelta(minutes=5)


def test_fails_times_counts_per_activity_execution(
    process_engine: ProcessEngine, clock: ManualClock
) -> None:
    flaky = fails_times(2, result=lambda ctx: {"attempt_seen": ctx.attempt})
    process_engine.register_handler("a", flaky)
    process_engine.deploy(process("p", service("A", handler="a"), user("U")))
    first = process_engine.start("p")
    second = process_engine.start("p")
    advance_and_run(clock, process_engine, HOUR)
    for inst in (first, second):
        assert_that(inst).is_waiting_at("U").has_variables(attempt_seen=3)
    assert flaky.failures == 4 and len(flaky.calls) == 6
    assert len({c.idempotency_key for c in flaky.calls}) == 2


def test_fails_times_error_forms() -> None:
    ctx = TaskContext(
        variables={}, instance_id="i", activity_id="A", business_key=None, attempt=1,
        idempotency_key="k",
    )  # fmt: skip
    boom = KeyError("no such account")
    handler = fails_times(1, error=boom)
    with pytest.raises(KeyError) as excinfo:
        handler(ctx)
    assert excinfo.value is boom
    assert handler(ctx) is None
    with pytest.raises(TimeoutError, match=r"A: simulated failure 1 of 1 \(fails_times\)"):
        fails_times(1, error=TimeoutError)(ctx)
    assert fails_times(0, result={"x": 1})(ctx) == {"x": 1}
    with pytest.raises(ValueError, match="times >= 0"):
        fails_times(-1)


EXTERNAL = process(
    "ext", service("Bill", extra='camunda:type="external" camunda:topic="billing"'), user("U")
)


def test_complete_external_task_by_topic(process_engine: ProcessEngine) -> None:
    process_engine.deploy(EXTERNAL)
    first = process_engine.start("ext", {"n": 1})
    second = process_engine.start("ext", {"n": 2})
    assert_that(second).is_waiting_exactly_at("Bill")

    done = complete_external_task(process_engine, "billing", {"billed": 2}, instance=second)
    assert done.id == second.id and done.waiting_at == ["U"]
    assert_that(second).has_passed("Bill").has_variables(billed=2)
    # The other instance's task was fetched on the way and handed back unlocked.
    [other] = process_engine.external_tasks.list(topic="billing")
    assert other.instance_id == first.id and other.worker_id is None

    assert complete_external_task(process_engine, "billing").id == first.id
    assert_that(first).is_waiting_exactly_at("U")
    with pytest.raises(
        AssertionError,
        match=r"no external task of topic 'billing' can be fetched now; external tasks: none",
    ):
        complete_external_task(process_engine, "billing")


def test_a_failure_message_lists_external_tasks(process_engine: ProcessEngine) -> None:
    process_engine.deploy(EXTERNAL)
    inst = process_engine.start("ext")
    process_engine.external_tasks.fetch_and_lock("worker-7", topics=["billing"], lock_duration=30)
    with pytest.raises(AssertionError) as excinfo:
        assert_that(inst).is_completed()
    assert (
        f"\nexternal tasks:\n  topic 'billing' at Bill (instance {inst.id}), locked by worker-7 "
        "until 2030-01-01 09:00:30\n" in str(excinfo.value)
    )
    with pytest.raises(AssertionError, match="locked by worker-7 until 2030-01-01 09:00:30"):
        complete_external_task(process_engine, "billing", instance=inst)
