"""Async on error: a failed service task becomes a committed retry job, then an incident."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from engine import BpmnError, ProcessEngine, RetryPolicy, TaskContext
from engine.core.errors import ConcurrencyConflict, EngineError, NotFound, StoreError
from engine.storage.write import InstanceWrite
from engine.testing import ManualClock
from engine.work.job_runner import JobRunner
from tests.bpmnbuild import process, service
from tests.test_core import table_counts

NO_JITTER = RetryPolicy(retries=3, initial_delay=10, backoff_coefficient=2, jitter=0)


class Flaky:
    """A handler that fails its first ``failures`` calls, then returns ``result``."""

    def __init__(self, failures: int, result: dict[str, object] | None = None) -> None:
        self.failures = failures
        self.result = result or {}
        self.calls: list[TaskContext] = []

    def __call__(self, ctx: TaskContext) -> dict[str, object]:
        self.calls.append(ctx)
        if len(self.calls) <= self.failures:
            raise TimeoutError(f"attempt {ctx.attempt} timed out")
        return self.result


def three_steps(eng: ProcessEngine, flaky: Flaky) -> list[str]:
    calls: list[str] = []
    eng.register_handler("first", lambda ctx: calls.append("first") or {"first": True})
    eng.register_handler("flaky", flaky)
    eng.register_handler("last", lambda ctx: calls.append("last") or {"last": True})
    eng.deploy(process("p", service("A", "first"), service("B", "flaky"), service("C", "last")))
    return calls


def test_failure_commits_a_job_and_the_retry_continues(
    make_engine: object, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=NO_JITTER)  # type: ignore[operator]
    flaky = Flaky(1, {"charged": 5})
    calls = three_steps(eng, flaky)
    inst = eng.start("p")
    assert inst.state == "active" and inst.waiting_at == ["B"]
    assert inst.variables["first"] is True and "charged" not in inst.variables
    [job] = eng.jobs(inst.id)
    assert job.kind == "async-continuation" and job.activity_id == "B"
    assert job.retries_left == 3 and job.attempts == 1  # the synchronous attempt counts
    assert job.due_at == clock.now() + timedelta(seconds=10)
    assert job.last_error == "TimeoutError: attempt 1 timed out"
    assert "TimeoutError" in (job.stacktrace or "")
    assert eng.run_jobs() == 0  # not due yet
    clock.advance(10)
    assert eng.run_jobs() == 1
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["charged"] == 5
    assert calls == ["first", "last"]  # A was not run again
    assert [c.attempt for c in flaky.calls] == [1, 2]
    assert len({c.idempotency_key for c in flaky.calls}) == 1
    assert eng.jobs() == []
    outcomes = [(h.activity_id, h.outcome) for h in eng.history(inst.id)]
    assert ("B", "failed") in outcomes and ("B", "completed") in outcomes
    assert outcomes.count(("A", "completed")) == 1


def test_what_the_failed_attempt_wrote_is_discarded(make_engine: object) -> None:
    eng = make_engine(retry_policy=NO_JITTER)  # type: ignore[operator]

    def scribbler(ctx: TaskContext) -> None:
        ctx.variables["order"]["status"] = "half-written"  # a private copy
        raise RuntimeError("crashed after writing")

    eng.register_handler("first", lambda ctx: {"first": 1})
    eng.register_handler("bad", scribbler)
    eng.deploy(process("p", service("A", "first"), service("B", "bad")))
    inst = eng.start("p", variables={"order": {"status": "new"}})
    assert eng.get_instance(inst.id).variables == {"order": {"status": "new"}, "first": 1}


def test_exponential_delays_then_incident_then_operator_retry(
    make_engine: object, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=NO_JITTER)  # type: ignore[operator]
    flaky = Flaky(4)
    three_steps(eng, flaky)
    inst = eng.start("p")
    delays = []
    for expected in (20, 40):
        job = eng.jobs(inst.id)[0]
        clock.set(job.due_at)
        assert eng.run_jobs() == 1
        delays.append((eng.jobs(inst.id)[0].due_at - clock.now()).total_seconds())
        assert delays[-1] == expected
    clock.set(eng.jobs(inst.id)[0].due_at)
    assert eng.run_jobs() == 1  # the third and last retry fails too
    [job] = eng.jobs(inst.id)
    assert job.retries_left == 0 and job.attempts == 4  # one synchronous, three retries
    [incident] = eng.incidents(inst.id)
    assert incident.job_id == job.id and incident.activity_id == "B"
    assert incident.message == "TimeoutError: attempt 4 timed out"
    assert eng.get_instance(inst.id).state == "incident"
    clock.advance(3600)
    assert eng.run_jobs() == 0  # an exhausted job is not run again

    eng.retry(incident.id)
    assert eng.incidents(inst.id) == []
    assert eng.incidents(inst.id, open_only=False)[0].resolved_at == clock.now()
    assert eng.get_instance(inst.id).state == "active"
    assert eng.run_jobs() == 1  # due now; the fifth call succeeds
    assert eng.get_instance(inst.id).state == "completed"


def test_retry_time_cycle_from_the_bpmn_file(eng: ProcessEngine, clock: ManualClock) -> None:
    flaky = Flaky(10)
    eng.register_handler("flaky", flaky)
    eng.deploy(
        process(
            "p",
            service(
                "B",
                "flaky",
                body="<bpmn:extensionElements><camunda:failedJobRetryTimeCycle>R2/PT10S"
                "</camunda:failedJobRetryTimeCycle></bpmn:extensionElements>",
            ),
        )
    )
    inst = eng.start("p")
    start = clock.now()
    assert eng.jobs(inst.id)[0].due_at == start + timedelta(seconds=10)
    clock.advance(10)
    eng.run_jobs()
    assert eng.jobs(inst.id)[0].due_at == start + timedelta(seconds=20)
    clock.advance(10)
    eng.run_jobs()
    assert len(flaky.calls) == 3  # one synchronous attempt, two retries
    assert eng.get_instance(inst.id).state == "incident"


class Fatal(Exception):
    pass


def test_non_retryable_error_opens_an_incident_at_once(make_engine: object) -> None:
    eng = make_engine(retry_policy=RetryPolicy(non_retryable=(Fatal,)))  # type: ignore[operator]

    def broken(ctx: TaskContext) -> None:
        raise Fatal("bad configuration")

    eng.register_handler("broken", broken)
    eng.deploy(process("p", service("B", "broken")))
    inst = eng.start("p")
    assert inst.state == "incident"
    assert eng.jobs(inst.id)[0].retries_left == 0
    assert eng.incidents(inst.id)[0].message == "Fatal: bad configuration"


def test_uncaught_bpmn_error_opens_an_incident_without_retries(eng: ProcessEngine) -> None:
    def declines(ctx: TaskContext) -> None:
        raise BpmnError("CARD_DECLINED", "no boundary catches this")

    eng.register_handler("declines", declines)
    eng.deploy(process("p", service("B", "declines")))
    inst = eng.start("p")
    assert inst.state == "incident" and inst.waiting_at == ["B"]
    assert "CARD_DECLINED" in eng.incidents(inst.id)[0].message


def test_parallel_branch_runs_to_its_wait_state(eng: ProcessEngine) -> None:
    eng.register_handler("flaky", Flaky(1))
    eng.register_handler("ok", lambda ctx: {"ok": True})
    bpmn = process(
        "p",
        '<bpmn:parallelGateway id="Split" />',
        service("Bad", "flaky"),
        service("Good", "ok"),
        '<bpmn:userTask id="Review" />',
        '<bpmn:parallelGateway id="Join" />',
        flows=[
            ("StartEvent_1", "Split"),
            ("Split", "Bad"),
            ("Split", "Good"),
            ("Good", "Review"),
            ("Bad", "Join"),
            ("Review", "Join"),
            ("Join", "EndEvent_1"),
        ],
    )
    eng.deploy(bpmn)
    inst = eng.start("p")
    assert inst.waiting_at == ["Bad", "Review"]
    assert inst.variables["ok"] is True


def test_first_task_failure_still_creates_the_instance(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    flaky = Flaky(1, {"done": True})
    eng.register_handler("flaky", flaky)
    eng.deploy(process("p", service("B", "flaky")))
    inst = eng.start("p", business_key="K")
    assert eng.get_instance(inst.id).waiting_at == ["B"]
    clock.advance(60)
    eng.run_jobs()
    assert eng.get_instance(inst.id).state == "completed"


def test_async_before_commits_first_and_a_job_calls_the_handler(eng: ProcessEngine) -> None:
    flaky = Flaky(0, {"called": True})
    eng.register_handler("work", flaky)
    eng.deploy(process("p", service("B", "work", extra='camunda:asyncBefore="true"')))
    inst = eng.start("p")
    assert flaky.calls == [] and inst.waiting_at == ["B"]
    assert eng.jobs(inst.id)[0].due_at == inst.created_at
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).state == "completed" and flaky.calls[0].attempt == 1


def test_async_before_on_the_start_event(eng: ProcessEngine) -> None:
    flaky = Flaky(0)
    eng.register_handler("work", flaky)
    eng.deploy(
        process(
            "p",
            service("B", "work"),
            start='<bpmn:startEvent id="StartEvent_1" camunda:asyncBefore="true" />',
        )
    )
    inst = eng.start("p")
    assert inst.state == "active" and flaky.calls == []
    assert eng.jobs(inst.id)[0].activity_id == "StartEvent_1"
    eng.run_jobs()
    assert eng.get_instance(inst.id).state == "completed"


def test_async_after_commits_after_the_task(eng: ProcessEngine) -> None:
    eng.register_handler("work", lambda ctx: {"worked": True})
    eng.register_handler("next", lambda ctx: {"next": True})
    eng.deploy(
        process(
            "p",
            service("A", "work", extra='camunda:asyncAfter="true"'),
            service("B", "next"),
        )
    )
    inst = eng.start("p")
    assert inst.waiting_at == ["A"] and "next" not in inst.variables
    eng.run_jobs()
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["worked"] and done.variables["next"]


def test_a_late_result_of_an_expired_lock_is_not_applied(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    flaky = Flaky(1, {"charged": 1})
    eng.register_handler("flaky", flaky)
    eng.deploy(process("p", service("B", "flaky")))
    inst = eng.start("p")
    clock.advance(10)
    slow, fast = JobRunner(eng, lock_duration=30), JobRunner(eng, lock_duration=30)
    [stale] = slow.acquire("slow-node", 5)
    assert fast.acquire("fast-node", 5) == []  # locked
    clock.advance(31)  # slow-node's lock expires before it reports
    [fresh] = fast.acquire("fast-node", 5)
    assert fresh["id"] == stale["id"]
    assert fast.execute(fresh, "fast-node") is True
    assert eng.get_instance(inst.id).state == "completed"
    assert slow.execute(stale, "slow-node") is False
    assert len(flaky.calls) == 2  # the sync attempt and fast-node's; slow-node's found nothing
    assert eng.get_instance(inst.id).state == "completed"
    assert [h.outcome for h in eng.history(inst.id)].count("completed") == 3


def test_a_failing_run_counts_the_attempt_and_ends_in_an_incident(
    make_engine: object, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=RetryPolicy(retries=1, initial_delay=5, jitter=0))  # type: ignore[operator]
    eng.register_handler("work", lambda ctx: {})
    bpmn = process(
        "p",
        service("A", "work", extra='camunda:asyncBefore="true"'),
        '<bpmn:exclusiveGateway id="Gw" />',
        '<bpmn:userTask id="Big" />',
        end="",
        flows=[("StartEvent_1", "A"), ("A", "Gw"), ("Gw", "Big", "${missing > 1}")],
    )
    eng.deploy(bpmn)
    inst = eng.start("p")
    assert eng.run_jobs() == 1
    [job] = eng.jobs(inst.id)
    assert job.attempts == 1 and job.retries_left == 1 and "missing" in (job.last_error or "")
    assert job.due_at == clock.now() + timedelta(seconds=5)
    clock.advance(5)
    assert eng.run_jobs() == 1
    assert eng.jobs(inst.id)[0].retries_left == 0
    assert eng.get_instance(inst.id).state == "incident"
    assert "missing" in eng.incidents(inst.id)[0].message


def test_execute_job_refuses_unknown_and_exhausted_jobs(eng: ProcessEngine) -> None:
    eng.register_handler("broken", Flaky(99))
    eng.deploy(process("p", service("B", "broken", extra='spillway:retries="0"')))
    inst = eng.start("p")
    [job] = eng.jobs(inst.id)
    assert job.retries_left == 0 and eng.get_instance(inst.id).state == "incident"
    with pytest.raises(EngineError, match="no retries left"):
        eng.execute_job(job.id)
    with pytest.raises(NotFound):
        eng.execute_job("nope")
    with pytest.raises(NotFound):
        eng.retry("nope")


def parked_instance(eng: ProcessEngine) -> tuple[dict[str, object], dict[str, int]]:
    """An instance parked at a failed task with its retry job: its row and the table counts."""
    eng.register_handler("flaky", Flaky(1))
    eng.deploy(process("p", service("B", "flaky")))
    inst = eng.start("p")
    row = eng.store.instance(inst.id)
    assert row is not None
    return row, table_counts(eng)


def test_a_stale_write_commits_none_of_its_rows(eng: ProcessEngine) -> None:
    row, before = parked_instance(eng)
    write = InstanceWrite(
        instance=dict(row, rev=row["rev"] + 1, state="completed"),
        expected_rev=row["rev"] - 1,  # someone else got there first
        jobs_insert=[dict(eng.store.jobs()[0], id="extra-job")],
        jobs_delete=[eng.store.jobs()[0]["id"]],
        incidents_resolve=["x"],
    )
    with pytest.raises(ConcurrencyConflict):
        eng.store.apply(write)
    assert table_counts(eng) == before
    assert eng.store.instance(str(row["id"])) == row


def test_executor_threads_never_run_two_jobs_of_one_instance(db_url: str) -> None:
    """Real time: 12 instances with four parallel flaky branches each, two executors."""
    eng = ProcessEngine(db_url, retry_policy=RetryPolicy(retries=5, initial_delay=0.01, jitter=0))
    running: dict[str, int] = {}
    overlaps: list[str] = []
    lock = threading.Lock()
    attempts: dict[str, int] = {}

    def work(ctx: TaskContext) -> dict[str, object]:
        with lock:
            running[ctx.instance_id] = running.get(ctx.instance_id, 0) + 1
            if running[ctx.instance_id] > 1 and ctx.attempt > 1:
                overlaps.append(ctx.instance_id)
            attempts[ctx.idempotency_key] = attempts.get(ctx.idempotency_key, 0) + 1
            first = attempts[ctx.idempotency_key] == 1
        try:
            time.sleep(0.002)
            if first:
                raise TimeoutError("first try fails")
            return {ctx.activity_id: True}
        finally:
            with lock:
                running[ctx.instance_id] -= 1

    eng.register_handler("work", work)
    branches = [service(f"T{i}", "work") for i in range(4)]
    flows = [("StartEvent_1", "Split")]
    flows += [("Split", f"T{i}") for i in range(4)] + [(f"T{i}", "Join") for i in range(4)]
    flows += [("Join", "EndEvent_1")]
    eng.deploy(
        process(
            "p",
            '<bpmn:parallelGateway id="Split" />',
            *branches,
            '<bpmn:parallelGateway id="Join" />',
            flows=flows,
        )
    )
    ids = [eng.start("p").id for _ in range(12)]
    executors = [eng.job_executor(workers=3, max_idle_wait=0.05).start() for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(eng.get_instance(i).state == "completed" for i in ids):
                break
            time.sleep(0.05)
    finally:
        for ex in executors:
            ex.stop(timeout=10)
    states = {eng.get_instance(i).state for i in ids}
    eng.close()
    assert states == {"completed"}
    assert overlaps == []
    assert all(n == 2 for n in attempts.values())  # one failure, one retry, never more


def test_a_write_the_database_refuses_commits_none_of_its_rows(eng: ProcessEngine) -> None:
    row, before = parked_instance(eng)
    existing_job = eng.store.jobs()[0]
    write = InstanceWrite(
        instance=dict(row, rev=row["rev"] + 1, state="completed"),
        expected_rev=row["rev"],
        jobs_insert=[existing_job],  # duplicate primary key: fails after the instance update
    )
    with pytest.raises(StoreError, match="refused by the database"):
        eng.store.apply(write)
    assert table_counts(eng) == before
    assert eng.store.instance(str(row["id"])) == row


def test_stopping_executor_gives_back_jobs_it_had_not_started(db_url: str) -> None:
    eng = ProcessEngine(db_url)
    release = threading.Event()
    started = threading.Event()

    def slow(ctx: TaskContext) -> None:
        started.set()
        release.wait(10)

    eng.register_handler("slow", slow)
    eng.deploy(process("p", service("A", "slow", extra='camunda:asyncBefore="true"')))
    for _ in range(3):
        eng.start("p")
    ex = eng.job_executor(workers=1, max_idle_wait=0.05).start()
    assert started.wait(10)
    time.sleep(0.1)  # the acquisition thread queues the other two behind the running one
    locked = [j for j in eng.jobs() if j.locked_by == ex.owner]
    assert len(locked) == 3
    stopper = threading.Thread(target=ex.stop, kwargs={"timeout": 10})
    stopper.start()
    time.sleep(0.1)
    release.set()
    stopper.join(10)
    jobs = eng.jobs()
    assert len(jobs) == 2  # the running job finished; the queued one was never run
    assert all(j.locked_by is None for j in jobs)
    assert len(eng.instances(state="completed")) == 1
    eng.close()


def test_a_job_whose_instance_moved_on_after_acquisition_runs_on_fresh_state(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    # The executor reads the instance with the job; a user call in between makes that copy
    # stale. The job must still complete (not be given back), on the instance as it is now.
    eng.register_handler("charge", lambda ctx: {"charged": True})
    eng.deploy(
        process(
            "p",
            '<bpmn:parallelGateway id="Split" />',
            service("Charge", "charge", extra='camunda:asyncBefore="true"'),
            '<bpmn:userTask id="Review" />',
            '<bpmn:parallelGateway id="Join" />',
            flows=[
                ("StartEvent_1", "Split"),
                ("Split", "Charge"),
                ("Split", "Review"),
                ("Charge", "Join"),
                ("Review", "Join"),
                ("Join", "EndEvent_1"),
            ],
        )
    )
    inst = eng.start("p")
    runner = JobRunner(eng)
    [job] = runner.acquire("node", 5)
    eng.complete_task(inst.id, "Review", {"approved": True})
    assert runner.execute(job, "node") is True
    done = eng.get_instance(inst.id)
    assert done.state == "completed"
    assert done.variables == {"approved": True, "charged": True}
    assert not eng.jobs()
    charged = [h for h in eng.history(inst.id) if h.activity_id == "Charge"]
    assert [h.outcome for h in charged] == ["completed"]  # the stale attempt left no trace
