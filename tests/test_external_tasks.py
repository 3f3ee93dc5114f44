"""External tasks through ``eng.external_tasks``: fetch and lock, complete, failures, BPMN
errors, locks and their expiry, duplicates, and concurrent completion of parallel tasks."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import timedelta

import pytest

from engine import BpmnError, LockLost, NotFound, ProcessEngine, TaskContext
from engine.core.errors import EngineError
from engine.core.values import ExternalTask
from engine.testing import ManualClock
from processes import example_process_handlers as example
from tests.bpmnbuild import process, service
from tests.conftest import EXAMPLES, EngineFactory

EXTERNAL = 'camunda:type="external" camunda:topic="billing"'


def deploy_example(eng: ProcessEngine) -> None:
    example.register(eng)
    eng.deploy(EXAMPLES / "example_process.bpmn")


def start_example(eng: ProcessEngine, count: int = 5) -> str:
    return eng.start("ExampleProcess", {"files": example.files(count)}).id


def one_task(eng: ProcessEngine, extra: str = "", body: str = "") -> str:
    eng.deploy(process("one", service("Bill", extra=f"{EXTERNAL} {extra}", body=body)))
    return eng.start("one", {"amount": 30, "customer": "ann"}, business_key="B-1").id


def passed(eng: ProcessEngine, instance_id: str, activity_id: str) -> int:
    return sum(
        1
        for h in eng.history(instance_id)
        if h.activity_id == activity_id and h.outcome == "completed"
    )


# -- fetch, lock, complete ----------------------------------------------------------------


def test_fetch_lock_and_complete_move_the_instance_on(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    deploy_example(eng)
    iid = start_example(eng, 5)
    assert eng.get_instance(iid).waiting_at == ["Task_Copy"]
    first = eng.external_tasks.fetch_and_lock("w1", ["copy"], max_tasks=3, lock_duration=30)
    assert len(first) == 3
    for task in first:
        assert task.topic == "copy" and task.instance_id == iid
        assert task.activity_id == "Task_Copy" and task.process_key == "ExampleProcess"
        assert task.worker_id == "w1" and task.retries is None and task.attempts == 0
        assert task.lock_expires_at == clock.now() + timedelta(seconds=30)
        # The parked task's own data: the item of its multi-instance branch.
        assert task.variables["file"] in example.files(5)
        assert task.variables["files"] == example.files(5)
    second = eng.external_tasks.fetch_and_lock("w2", ["copy"], max_tasks=10)
    assert len(second) == 2 and {t.worker_id for t in second} == {"w2"}
    assert not {t.id for t in first} & {t.id for t in second}
    assert eng.external_tasks.fetch_and_lock("w3", ["copy"]) == []
    seen = {t.variables["file"] for t in first + second}
    assert seen == set(example.files(5))

    for worker, tasks in (("w1", first), ("w2", second)):
        for task in tasks:
            ctx = eng.external_tasks.context(task)
            assert ctx.idempotency_key == task.id and ctx.attempt == 1
            assert eng.external_tasks.complete(task.id, worker, example.copy_file(ctx)) is True
    inst = eng.get_instance(iid)
    assert inst.state == "completed"
    assert sorted(c["from"] for c in inst.variables["copies"]) == example.files(5)
    assert eng.external_tasks.list() == []
    assert passed(eng, iid, "Task_Copy") == 6  # five branches and the activity itself
    assert passed(eng, iid, "EndEvent_Copied") == 1


def test_topics_with_their_own_lock_durations_and_variables(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    one_task(eng)
    deploy_example(eng)
    start_example(eng, 2)
    now = clock.now()
    tasks = eng.external_tasks.fetch_and_lock(
        "w1",
        [("billing", 10.0, ["amount"]), {"topicName": "copy", "lock_duration": 99}],
        max_tasks=10,
        variables=["file"],
    )
    by_topic = {t.topic: t for t in tasks}
    assert by_topic["billing"].variables == {"amount": 30}
    assert by_topic["billing"].business_key == "B-1"
    assert by_topic["billing"].lock_expires_at == now + timedelta(seconds=10)
    assert by_topic["copy"].variables.keys() == {"file"}
    assert by_topic["copy"].lock_expires_at == now + timedelta(seconds=99)
    assert len(tasks) == 3


@pytest.mark.parametrize(
    ("topics", "message"),
    [
        ("billing", "non-empty list"),
        ([], "non-empty list"),
        ([{"topic": "billing", "lockDuration": 1000}], "milliseconds"),
        (["billing", ("billing", 5.0)], "requested twice"),
        ([("billing", -1.0)], "lock duration"),
        ([{"topic": "billing", "colour": 1}], "unknown keys"),
        ([42], "a topic is a name"),
    ],
)
def test_bad_fetch_requests_are_refused_by_name(
    eng: ProcessEngine, topics: object, message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        eng.external_tasks.fetch_and_lock("w1", topics)  # type: ignore[arg-type]


def test_bad_fetch_arguments(eng: ProcessEngine) -> None:
    with pytest.raises(EngineError, match="max_tasks"):
        eng.external_tasks.fetch_and_lock("w1", ["billing"], max_tasks=0)
    with pytest.raises(EngineError, match="worker id"):
        eng.external_tasks.fetch_and_lock("", ["billing"])
    with pytest.raises(EngineError, match="lock_duration"):
        eng.external_tasks.fetch_and_lock("w1", ["billing"], lock_duration="PT1M")  # type: ignore[arg-type]


# -- duplicates and locks -----------------------------------------------------------------


def test_a_duplicate_completion_is_logged_ignored_and_returns_false(
    eng: ProcessEngine, caplog: pytest.LogCaptureFixture
) -> None:
    iid = one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    assert eng.external_tasks.complete(task.id, "w1", {"invoice": 1}) is True
    with caplog.at_level(logging.WARNING, logger="spillway.external"):
        assert eng.external_tasks.complete(task.id, "w1", {"invoice": 2}) is False
        # Any worker's late copy of the result is a duplicate too, not a lock problem.
        assert eng.external_tasks.complete(task.id, "w9", {"invoice": 3}) is False
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert task.id in caplog.records[0].getMessage()
    assert "already completed" in caplog.records[0].getMessage()
    inst = eng.get_instance(iid)
    assert inst.state == "completed" and inst.variables["invoice"] == 1
    assert passed(eng, iid, "Bill") == 1
    assert eng.stats["external_duplicates"] == 2
    with pytest.raises(NotFound, match="no external task"):
        eng.external_tasks.complete("no-such-task", "w1")
    assert eng.external_tasks.handle_failure(task.id, "w1", "late failure") is False


def test_a_report_from_a_worker_without_the_lock_raises_lock_lost(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    iid = one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"], lock_duration=10)
    for call in (
        lambda: eng.external_tasks.complete(task.id, "w2", {"x": 1}),
        lambda: eng.external_tasks.handle_failure(task.id, "w2", "boom", retries=1),
        lambda: eng.external_tasks.handle_bpmn_error(task.id, "w2", "E"),
        lambda: eng.external_tasks.extend_lock(task.id, "w2", 10),
    ):
        with pytest.raises(LockLost, match="locked by 'w1'"):
            call()
    # The lock expires and another worker takes the task: the first one's result is refused.
    clock.advance(11)
    [again] = eng.external_tasks.fetch_and_lock("w2", ["billing"])
    assert again.id == task.id
    with pytest.raises(LockLost, match="locked by 'w2'"):
        eng.external_tasks.complete(task.id, "w1", {"x": 1})
    assert eng.get_instance(iid).state == "active"
    assert eng.external_tasks.complete(task.id, "w2", {"x": 2}) is True
    assert eng.get_instance(iid).variables["x"] == 2


def test_the_holder_of_an_expired_lock_may_still_complete_if_nobody_took_it(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    iid = one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"], lock_duration=10)
    clock.advance(60)
    assert eng.external_tasks.complete(task.id, "w1", {"late": True}) is True
    assert eng.get_instance(iid).state == "completed"


def test_expired_locks_are_fetchable_again_and_extend_lock_keeps_them(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    deploy_example(eng)
    start_example(eng, 2)
    a, b = eng.external_tasks.fetch_and_lock("w1", ["copy"], lock_duration=10)
    clock.advance(5)
    eng.external_tasks.extend_lock(a.id, "w1", lock_duration=20)
    assert eng.external_tasks.get(a.id).lock_expires_at == clock.now() + timedelta(seconds=20)
    clock.advance(6)  # b's lock expired, a's runs 14 s more
    [taken] = eng.external_tasks.fetch_and_lock("w2", ["copy"], lock_duration=60)
    assert taken.id == b.id and taken.worker_id == "w2"
    clock.advance(15)
    assert [t.id for t in eng.external_tasks.fetch_and_lock("w3", ["copy"])] == [a.id]
    with pytest.raises(LockLost):
        eng.external_tasks.extend_lock(a.id, "w1", 10)


def test_extend_lock_of_a_completed_task_is_not_found(eng: ProcessEngine) -> None:
    one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    eng.external_tasks.complete(task.id, "w1")
    with pytest.raises(NotFound, match="already completed"):
        eng.external_tasks.extend_lock(task.id, "w1")
    with pytest.raises(NotFound):
        eng.external_tasks.extend_lock("no-such-task", "w1")


def test_unlock_makes_a_task_fetchable_at_once(eng: ProcessEngine) -> None:
    one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"], lock_duration=600)
    assert eng.external_tasks.fetch_and_lock("w2", ["billing"]) == []
    eng.external_tasks.unlock(task.id)
    assert eng.external_tasks.get(task.id).worker_id is None
    with pytest.raises(LockLost, match="not locked"):
        eng.external_tasks.complete(task.id, "w1")
    [again] = eng.external_tasks.fetch_and_lock("w2", ["billing"])
    assert again.id == task.id
    with pytest.raises(NotFound):
        eng.external_tasks.unlock("no-such-task")


def test_list_shows_open_and_failed_tasks_with_their_variables(eng: ProcessEngine) -> None:
    iid = one_task(eng)
    deploy_example(eng)
    other = start_example(eng, 3)
    assert {t.topic for t in eng.external_tasks.list()} == {"billing", "copy"}
    [bill] = eng.external_tasks.list(topic="billing")
    assert bill.instance_id == iid and bill.variables == {"amount": 30, "customer": "ann"}
    copies = eng.external_tasks.list(instance_id=other)
    assert sorted(t.variables["file"] for t in copies) == example.files(3)
    assert eng.external_tasks.list(topic="billing", instance_id=other) == []


# -- failures -----------------------------------------------------------------------------


def test_a_failure_with_retries_comes_back_after_the_timeout(
    eng: ProcessEngine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    iid = one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    with caplog.at_level(logging.WARNING, logger="spillway.external"):
        assert eng.external_tasks.handle_failure(
            task.id, "w1", "gateway down", error_details="trace...", retries=2, retry_timeout=30
        )
    assert "gateway down" in caplog.text and "2 retries left" in caplog.text
    failed = eng.external_tasks.get(task.id)
    assert failed.retries == 2 and failed.attempts == 1 and failed.worker_id is None
    assert failed.error_message == "gateway down" and failed.error_details == "trace..."
    assert failed.due_at == clock.now() + timedelta(seconds=30)
    assert eng.external_tasks.fetch_and_lock("w1", ["billing"]) == []
    clock.advance(30)
    [again] = eng.external_tasks.fetch_and_lock("w2", ["billing"])
    assert again.id == task.id and again.retries == 2
    assert eng.external_tasks.context(again).attempt == 2
    assert eng.get_instance(iid).state == "active" and eng.incidents(iid) == []


def test_a_failure_without_retries_given_follows_the_task_retry_policy(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    # camunda:failedJobRetryTimeCycle R2/PT5S: two retries five seconds apart, then incident.
    body = (
        "<bpmn:extensionElements><camunda:failedJobRetryTimeCycle>R2/PT5S"
        "</camunda:failedJobRetryTimeCycle></bpmn:extensionElements>"
    )
    iid = one_task(eng, body=body)
    for retries_left in (2, 1):
        [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
        assert eng.external_tasks.handle_failure(task.id, "w1", "down") is True
        failed = eng.external_tasks.get(task.id)
        assert failed.retries == retries_left
        assert failed.due_at == clock.now() + timedelta(seconds=5)
        clock.advance(5)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    assert eng.external_tasks.handle_failure(task.id, "w1", "still down") is True
    [incident] = eng.incidents(iid)
    assert incident.kind == "failed-external-task" and incident.message == "still down"
    assert eng.get_instance(iid).state == "incident"


def test_retries_zero_opens_an_incident_that_retry_resolves(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    iid = one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    eng.external_tasks.handle_failure(
        task.id, "w1", "card service gone", error_details="Traceback ...", retries=0
    )
    inst = eng.get_instance(iid)
    assert inst.state == "incident" and inst.waiting_at == ["Bill"]
    [incident] = eng.incidents(iid)
    assert incident.kind == "failed-external-task" and incident.activity_id == "Bill"
    assert incident.external_task_id == task.id
    assert incident.message == "card service gone" and incident.stacktrace == "Traceback ..."
    failed = eng.external_tasks.get(task.id)
    assert failed.state == "failed" and failed.retries == 0 and failed.worker_id is None
    assert eng.external_tasks.fetch_and_lock("w1", ["billing"]) == []
    with pytest.raises(LockLost, match="incident open"):
        eng.external_tasks.complete(task.id, "w1")

    retried = eng.retry(incident.id, retries=2)
    assert isinstance(retried, ExternalTask) and retried.retries == 2
    assert eng.incidents(iid) == []
    assert eng.get_instance(iid).state == "active"
    [again] = eng.external_tasks.fetch_and_lock("w2", ["billing"])
    assert again.id == task.id and again.retries == 2
    assert eng.external_tasks.complete(again.id, "w2", {"paid": True}) is True
    assert eng.get_instance(iid).state == "completed"


def test_retry_by_the_external_task_id(eng: ProcessEngine) -> None:
    iid = one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    eng.external_tasks.handle_failure(task.id, "w1", "down", retries=0)
    eng.retry(task.id)
    assert eng.get_instance(iid).state == "active"
    assert [t.id for t in eng.external_tasks.fetch_and_lock("w1", ["billing"])] == [task.id]
    with pytest.raises(EngineError, match="has not failed"):
        eng.retry(task.id)  # open and locked by w1: not taken away from it
    assert eng.external_tasks.get(task.id).worker_id == "w1"


def test_bad_failure_arguments(eng: ProcessEngine) -> None:
    one_task(eng)
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    with pytest.raises(EngineError, match="retries"):
        eng.external_tasks.handle_failure(task.id, "w1", "x", retries=-1)
    with pytest.raises(EngineError, match="retry_timeout"):
        eng.external_tasks.handle_failure(task.id, "w1", "x", retries=1, retry_timeout=-5)
    assert eng.external_tasks.get(task.id).attempts == 0


# -- BPMN errors --------------------------------------------------------------------------


def boundary_process(eng: ProcessEngine) -> None:
    eng.register_handler("notify", lambda ctx: {"notified": ctx.variables["reason"]})
    eng.deploy(
        process(
            "declines",
            service("Bill", extra=EXTERNAL),
            '<bpmn:boundaryEvent id="Declined" attachedToRef="Bill">'
            '<bpmn:errorEventDefinition errorRef="Err_Declined" /></bpmn:boundaryEvent>',
            service("Notify", "notify"),
            '<bpmn:endEvent id="EndDeclined" />',
            flows=[
                ("StartEvent_1", "Bill"),
                ("Bill", "EndEvent_1"),
                ("Declined", "Notify"),
                ("Notify", "EndDeclined"),
            ],
            definitions='<bpmn:error id="Err_Declined" errorCode="CARD_DECLINED" />',
        )
    )


def test_a_bpmn_error_is_caught_by_the_boundary_event(eng: ProcessEngine) -> None:
    boundary_process(eng)
    iid = eng.start("declines").id
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    assert eng.external_tasks.handle_bpmn_error(
        task.id, "w1", "CARD_DECLINED", message="no funds", variables={"reason": "funds"}
    )
    inst = eng.get_instance(iid)
    assert inst.state == "completed" and inst.variables["notified"] == "funds"
    outcomes = {h.activity_id: h.outcome for h in eng.history(iid)}
    assert outcomes["Bill"] == "error" and outcomes["EndDeclined"] == "completed"
    assert "EndEvent_1" not in outcomes
    assert eng.external_tasks.list() == []
    assert eng.external_tasks.complete(task.id, "w1") is False


def test_an_uncaught_bpmn_error_opens_an_incident(eng: ProcessEngine) -> None:
    boundary_process(eng)
    iid = eng.start("declines").id
    [task] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    eng.external_tasks.handle_bpmn_error(task.id, "w1", "OTHER_CODE", message="unexpected")
    inst = eng.get_instance(iid)
    assert inst.state == "incident" and inst.waiting_at == ["Bill"]
    [incident] = eng.incidents(iid)
    assert incident.kind == "failed-external-task" and "OTHER_CODE" in incident.message
    eng.retry(incident.id)
    [again] = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    eng.external_tasks.complete(again.id, "w1")
    assert eng.get_instance(iid).state == "completed"
    with pytest.raises(EngineError, match="error code"):
        eng.external_tasks.handle_bpmn_error(again.id, "w1", "")


def test_an_error_on_one_branch_cancels_the_other_parallel_tasks(eng: ProcessEngine) -> None:
    mi = (
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>4</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    eng.deploy(
        process(
            "fanout",
            service("Bill", extra=EXTERNAL, body=mi),
            '<bpmn:boundaryEvent id="Failed" attachedToRef="Bill">'
            '<bpmn:errorEventDefinition errorRef="Err" /></bpmn:boundaryEvent>',
            '<bpmn:endEvent id="EndFailed" />',
            flows=[("StartEvent_1", "Bill"), ("Bill", "EndEvent_1"), ("Failed", "EndFailed")],
            definitions='<bpmn:error id="Err" errorCode="STOP" />',
        )
    )
    iid = eng.start("fanout").id
    tasks = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    assert len(tasks) == 4
    eng.external_tasks.complete(tasks[0].id, "w1")
    eng.external_tasks.handle_bpmn_error(tasks[1].id, "w1", "STOP")
    assert eng.get_instance(iid).state == "completed"
    assert eng.external_tasks.list() == []  # the cancelled branches' rows went with them
    assert eng.external_tasks.complete(tasks[2].id, "w1") is False
    outcomes = Counter(h.outcome for h in eng.history(iid) if h.activity_id == "Bill")
    assert outcomes["cancelled"] >= 2 and outcomes["error"] == 1


# -- concurrency --------------------------------------------------------------------------


def complete_concurrently(
    engines: list[ProcessEngine], tasks: list[ExternalTask], threads: int
) -> list[object]:
    """Complete ``tasks`` (each fetched by worker ``w<n>``) from ``threads`` threads that start
    at the same moment; engines are used in turn."""
    gate = threading.Barrier(threads)
    outcomes: list[object] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        eng = engines[n % len(engines)]
        mine = tasks[n::threads]
        gate.wait()
        for task in mine:
            try:
                result: object = eng.external_tasks.complete(
                    task.id, task.worker_id or "", {"copy": task.variables["file"]}
                )
            except Exception as exc:
                result = exc
            with lock:
                outcomes.append(result)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    # No timeout: every complete() returns or raises (its conflict retries are bounded), so
    # the threads end; a join(60) returned early on a loaded machine and the outcomes of the
    # threads still running were missing (the flaky "[True] * 50" failure).
    for thread in pool:
        thread.join()
    return outcomes


def fetch_all(eng: ProcessEngine, workers: int, count: int) -> list[ExternalTask]:
    tasks: list[ExternalTask] = []
    while len(tasks) < count:
        got = eng.external_tasks.fetch_and_lock(f"w{len(tasks) % workers}", ["copy"], max_tasks=7)
        assert got, f"only {len(tasks)} of {count} tasks fetchable"
        tasks.extend(got)
    return tasks


def test_fifty_parallel_tasks_completed_at_once_from_eight_threads(eng: ProcessEngine) -> None:
    deploy_example(eng)
    iid = start_example(eng, 50)
    tasks = fetch_all(eng, 8, 50)
    outcomes = complete_concurrently([eng], tasks, 8)
    assert outcomes == [True] * 50
    inst = eng.get_instance(iid)
    assert inst.state == "completed" and len(inst.variables["copies"]) == 50
    assert sorted(inst.variables["copies"]) == example.files(50)
    assert passed(eng, iid, "Task_Copy") == 51
    assert passed(eng, iid, "EndEvent_Copied") == 1
    assert eng.stats["external_completed"] == 50
    # Reports on one instance arriving together share writes.
    assert eng.stats["external_batches"] < 50


def test_two_engines_completing_one_instance_retry_their_conflicts(
    make_engine: EngineFactory,
) -> None:
    engines = [make_engine(), make_engine()]
    deploy_example(engines[0])
    example.register(engines[1])
    iid = start_example(engines[0], 50)
    tasks = fetch_all(engines[0], 8, 50)
    outcomes = complete_concurrently(engines, tasks, 8)
    assert outcomes == [True] * 50
    inst = engines[1].get_instance(iid)
    assert inst.state == "completed" and sorted(inst.variables["copies"]) == example.files(50)
    assert passed(engines[0], iid, "EndEvent_Copied") == 1
    assert sum(e.stats["external_completed"] for e in engines) == 50


def test_concurrent_duplicates_apply_once(eng: ProcessEngine) -> None:
    deploy_example(eng)
    iid = start_example(eng, 10)
    tasks = fetch_all(eng, 2, 10)
    outcomes = complete_concurrently([eng], tasks + tasks, 8)
    assert Counter(outcomes) == {True: 10, False: 10}
    assert len(eng.get_instance(iid).variables["copies"]) == 10
    assert eng.stats["external_duplicates"] == 10


# -- pooled service tasks -----------------------------------------------------------------


def test_a_pooled_service_task_becomes_an_external_task_of_its_handler(
    eng: ProcessEngine,
) -> None:
    seen: list[TaskContext] = []

    def quote(ctx: TaskContext) -> dict[str, object]:
        seen.append(ctx)
        return {"quote": ctx.variables["amount"] * 2}

    eng.register_handler("quote", quote)
    prop = (
        "<bpmn:extensionElements><camunda:properties>"
        '<camunda:property name="currency" value="EUR" />'
        "</camunda:properties></bpmn:extensionElements>"
    )
    eng.deploy(
        process("pooled", service("Quote", "quote", extra='spillway:pooled="true"', body=prop))
    )
    inst = eng.start("pooled", {"amount": 21})
    assert inst.state == "active" and inst.waiting_at == ["Quote"] and seen == []
    [task] = eng.external_tasks.list()
    assert task.topic == "quote"
    assert eng.worker_pool("quote").run_once() == 1
    assert eng.get_instance(inst.id).variables["quote"] == 42
    [ctx] = seen
    assert ctx.idempotency_key == task.id and ctx.attempt == 1 and ctx.topic == "quote"
    assert ctx.activity_id == "Quote" and ctx.process_key == "pooled"
    assert dict(ctx.properties) == {"currency": "EUR"}
    with pytest.raises(TypeError):
        ctx.variables["amount"] = 1  # type: ignore[index]


def test_a_bpmn_error_raised_by_a_pooled_handler_takes_the_error_path(
    eng: ProcessEngine,
) -> None:
    def bill(ctx: TaskContext) -> None:
        raise BpmnError("CARD_DECLINED", variables={"reason": "expired"})

    boundary_process(eng)
    iid = eng.start("declines").id
    assert eng.worker_pool("billing", bill).run_once() == 1
    inst = eng.get_instance(iid)
    assert inst.state == "completed" and inst.variables["notified"] == "expired"
