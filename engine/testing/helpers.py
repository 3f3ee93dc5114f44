"""What process tests do all the time: move virtual time and run what fell due, simulate a
flaky service, complete an external task. (To run the jobs due now, call ``engine.run_jobs()``.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.core.values import ExternalTask, Job, ProcessInstance, TaskContext
from engine.testing.assertions import external_task_line
from engine.testing.clock import ManualClock

if TYPE_CHECKING:
    from engine.engine import ProcessEngine

#: The worker id ``complete_external_task`` fetches with.
TEST_WORKER = "test-worker"

Result = Mapping[str, Any] | None | Callable[[TaskContext], Mapping[str, Any] | None]


def advance_and_run(clock: ManualClock, engine: ProcessEngine, by: float | timedelta) -> int:
    """Move virtual time forward by ``by`` (seconds or timedelta), running every job at the
    moment it falls due; returns how many jobs ran.

    Time stops at each due moment in between, as Temporal's time-skipping test server does: a
    job retried every hour runs at +1h, +2h, ... and a 3-day timer fires at +3d, in the order a
    real clock would give, each seeing ``now`` equal to its due time. A job locked by a worker
    counts as due when its lock expires.
    """
    delta = by if isinstance(by, timedelta) else timedelta(seconds=by)
    if delta < timedelta(0):
        raise ValueError(f"advance_and_run only moves forward; got {by!r}")
    target = clock.now() + delta
    ran = engine.run_jobs()
    while True:
        # Everything due at clock.now() has run; what remains due then is locked elsewhere.
        now = clock.now()
        upcoming = [t for t in map(_runnable_at, engine.jobs()) if t and now < t <= target]
        if not upcoming:
            break
        clock.set(min(upcoming))
        ran += engine.run_jobs()
    if clock.now() < target:  # a handler may have moved the clock itself
        clock.set(target)
    return ran + engine.run_jobs()


def _runnable_at(job: Job) -> datetime | None:
    if job.retries_left <= 0:
        return None  # an incident waits for eng.retry()
    if job.locked_by and job.lock_expires_at is not None:
        return max(job.due_at, job.lock_expires_at)
    return job.due_at


class FailingHandler:
    """A handler that raises ``error`` on the first ``times`` attempts of each activity
    execution and then returns ``result``. Built by ``fails_times``."""

    def __init__(
        self,
        times: int,
        result: Result = None,
        error: type[BaseException] | BaseException = RuntimeError,
    ) -> None:
        if times < 0:
            raise ValueError(f"fails_times needs times >= 0, got {times}")
        self.times = times
        self.result = result
        self.error = error
        #: The context of every call, in order (attempts, idempotency keys, variables seen).
        self.calls: list[TaskContext] = []
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        with self._lock:
            self.calls.append(ctx)
            failed = self._failures.get(ctx.idempotency_key, 0)
            if failed < self.times:
                self._failures[ctx.idempotency_key] = failed + 1
                fail = failed + 1
            else:
                fail = 0
        if fail:
            if isinstance(self.error, BaseException):
                raise self.error
            raise self.error(
                f"{ctx.activity_id}: simulated failure {fail} of {self.times} (fails_times)"
            )
        if callable(self.result):
            return self.result(ctx)
        return self.result

    @property
    def failures(self) -> int:
        """How many calls raised, over all executions."""
        with self._lock:
            return sum(self._failures.values())


def fails_times(
    times: int,
    result: Result = None,
    error: type[BaseException] | BaseException = RuntimeError,
) -> FailingHandler:
    """A handler that fails ``times`` times, then succeeds with ``result`` (a mapping of
    variables, None, or a function of the ``TaskContext``).

    Failures are counted per ``ctx.idempotency_key``, that is per execution of an activity:
    every instance (and every pass of a loop) fails ``times`` times before it succeeds.
    ``error`` is an exception class (called with a message) or an instance to raise.
    """
    return FailingHandler(times, result, error)


def complete_external_task(
    engine: ProcessEngine,
    topic: str,
    variables: Mapping[str, Any] | None = None,
    *,
    instance: ProcessInstance | str | None = None,
    worker_id: str = TEST_WORKER,
) -> ProcessInstance:
    """Fetch and lock one external task of ``topic`` (of ``instance`` if given), complete it
    with ``variables`` as a worker would, and return its instance as the database now holds it.

    Only a task a worker could fetch now is taken (due, not locked by another worker, or its
    lock expired); when there is none this raises AssertionError listing the external tasks.
    """
    __tracebackhide__ = True
    instance_id = instance.id if isinstance(instance, ProcessInstance) else instance
    task = _fetch_one(engine, topic, instance_id, worker_id)
    engine.external_tasks.complete(task.id, worker_id, variables=dict(variables or {}))
    return engine.get_instance(task.instance_id)


def _fetch_one(
    engine: ProcessEngine, topic: str, instance_id: str | None, worker_id: str
) -> ExternalTask:
    __tracebackhide__ = True
    service = engine.external_tasks
    # fetch_and_lock has no instance filter: lock every fetchable task of the topic, keep
    # this instance's first, hand the others back.
    wanted = 1 if instance_id is None else max(1, len(service.list(topic=topic)))
    locked = service.fetch_and_lock(worker_id, topics=[topic], max_tasks=wanted)
    mine = [t for t in locked if instance_id is None or t.instance_id == instance_id][:1]
    for task in locked:
        if not mine or task.id != mine[0].id:
            service.unlock(task.id)
    if mine:
        return mine[0]
    where = f" of instance {instance_id}" if instance_id else ""
    present = service.list(instance_id=instance_id)
    raise AssertionError(
        f"no external task of topic '{topic}'{where} can be fetched now; external tasks"
        f"{where}:"
        + ("\n" + "\n".join(f"  {external_task_line(t)}" for t in present) if present else " none")
    )
