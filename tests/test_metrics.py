"""``ProcessEngine.metrics``: one Prometheus registry per engine, counters per process, gauges
read from the database, the executors' queue depth while jobs wait for a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from engine import ProcessEngine
from engine.testing import ManualClock
from engine.work.metrics import EngineMetrics
from tests.bpmnbuild import process, service
from tests.conftest import EngineFactory

DEFERRED = 'camunda:asyncBefore="true"'


def metrics_of(eng: ProcessEngine) -> EngineMetrics:
    assert eng.metrics is not None
    return eng.metrics


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_two_engines_in_one_process_count_apart(make_engine: EngineFactory) -> None:
    one, two = make_engine(), make_engine()
    for eng in (one, two):
        eng.register_handler("ok", lambda ctx: None)
        eng.deploy(process("p", service("A", handler="ok")))
    one.start("p")
    one.start("p")
    two.start("p")
    started = "spillway_process_instances_started_total"
    assert metrics_of(one).registry is not metrics_of(two).registry
    assert metrics_of(one).value(started, {"process_key": "p"}) == 2
    assert metrics_of(two).value(started, {"process_key": "p"}) == 1
    # The gauges read the database they share: the same for both.
    one.deploy(process("w", service("W", handler="ok", extra=DEFERRED)))
    one.start("w")
    for eng in (one, two):
        assert metrics_of(eng).value("spillway_jobs_due") == 1


def test_timer_jobs_are_counted_by_their_kind(eng: ProcessEngine, clock: ManualClock) -> None:
    timer = (
        '<bpmn:intermediateCatchEvent id="Wait"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>"
    )
    eng.deploy(process("t", timer))
    eng.start("t")
    clock.advance(3600 + 30)
    assert eng.run_jobs() == 1
    m = metrics_of(eng)
    timer_job = {"kind": "timer", "handler": ""}
    assert m.value("spillway_jobs_acquired_total", timer_job) == 1
    assert m.value("spillway_jobs_executed_total", timer_job) == 1
    assert m.value("spillway_job_pickup_latency_seconds_sum", {"kind": "timer"}) == 30.0
    assert m.value("spillway_process_instances_completed_total", {"process_key": "t"}) == 1


def test_queue_depth_counts_jobs_waiting_for_a_worker_thread(make_engine: EngineFactory) -> None:
    eng = make_engine(clock=None)  # the system clock: the executor waits in real time
    entered, release = threading.Event(), threading.Event()

    def slow(ctx: object) -> None:
        entered.set()
        assert release.wait(30)

    eng.register_handler("slow", slow)
    eng.deploy(process("s", service("S", handler="slow", extra=DEFERRED)))
    for _ in range(3):
        eng.start("s")
    m = metrics_of(eng)
    depth = "spillway_job_executor_queue_depth"
    executor = eng.job_executor(workers=1)
    executor.start()
    try:
        assert entered.wait(30)
        # One job runs on the only thread; the other two were acquired with it and wait.
        wait_until(lambda: m.value(depth) == 2, "two queued jobs")
        release.set()
        wait_until(lambda: executor.executed == 3, "the jobs to run")
        assert m.value(depth) == 0
    finally:
        release.set()
        executor.stop(timeout=30)
    assert (
        m.value("spillway_jobs_executed_total", {"kind": "async-continuation", "handler": "slow"})
        == 3
    )
    assert m.value("spillway_process_instances_completed_total", {"process_key": "s"}) == 3


def test_metrics_can_be_switched_off(make_engine: EngineFactory) -> None:
    eng = make_engine(metrics=False)
    eng.register_handler("ok", lambda ctx: None)
    eng.deploy(process("p", service("A", handler="ok")))
    assert eng.start("p").state == "completed"
    assert eng.metrics is None


def test_worker_pool_completions_and_duplicates_are_counted(eng: ProcessEngine) -> None:
    eng.deploy(process("x", service("X", extra='camunda:type="external" camunda:topic="copy"')))
    ids = [eng.start("x").id for _ in range(3)]
    tasks = eng.external_tasks.fetch_and_lock("w", ["copy"], max_tasks=10)
    assert len(tasks) == 3
    outcomes = eng.external_tasks.report_all(
        [("complete", t, "w", {}) for t in tasks] + [("complete", tasks[0], "w", {})]
    )
    assert outcomes.count(True) == 3
    m = metrics_of(eng)
    assert m.value("spillway_external_tasks_fetched_total", {"topic": "copy"}) == 3
    assert m.value("spillway_external_tasks_completed_total", {"topic": "copy"}) == 3
    assert m.value("spillway_external_tasks_duplicates_total") == 1
    assert all(eng.get_instance(i).state == "completed" for i in ids)
