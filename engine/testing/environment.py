"""``ProcessEnvironment``: one object for a process test, as Temporal's ``WorkflowEnvironment``
and Camunda Process Test's context are: the engine, its virtual clock, and the helpers a test
uses all the time. The ``spillway_env`` fixture gives one per test.

Whenever the environment acts (``start``, ``complete_user_task``, ``correlate``, ``advance``,
``run``) it then runs what is due: jobs and timers, and the external tasks of mocked topics, over
and over until nothing is left to do at the current virtual time. Mocks are undone by
``close()`` (the fixture closes the environment after the test).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from engine.core.errors import BpmnError, NotFound
from engine.core.values import ExternalTask, Job, ProcessInstance, TaskContext
from engine.core.variables import check_variables
from engine.testing.assertions import ProcessInstanceAssert, assert_that, use_engine
from engine.testing.bpmn_graph import process_graph
from engine.testing.clock import ManualClock

if TYPE_CHECKING:
    from engine.core.values import Deployment
    from engine.engine import ProcessEngine

#: What a mock returns: variables (or None), a function of the TaskContext returning them, or
#: an exception to raise (a ``BpmnError`` takes the error path, anything else is a technical
#: failure under the task's retry policy).
MockResult: TypeAlias = (
    Mapping[str, Any] | BaseException | Callable[[TaskContext], Mapping[str, Any] | None] | None
)
#: Rounds of "run jobs, run mocked workers" at one virtual moment before giving up (a model
#: that loops forever through mocks).
MAX_ROUNDS = 10_000


def _outcome(result: MockResult, ctx: TaskContext) -> Mapping[str, Any] | None:
    if isinstance(result, BaseException):
        raise result
    if callable(result):
        return result(ctx)
    return result


class MockHandler:
    """A registered handler replaced for one test; ``calls`` holds every context it got."""

    def __init__(self, name: str, result: MockResult) -> None:
        self.name = name
        self.result = result
        self.calls: list[TaskContext] = []

    def __call__(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        self.calls.append(ctx)
        return _outcome(self.result, ctx)


class MockWorker:
    """Completes the external tasks of one topic as they appear (Camunda Process Test's
    ``mockJobWorker``); ``calls`` holds the context of every task it handled."""

    def __init__(self, engine: ProcessEngine, topic: str, result: MockResult) -> None:
        self.engine = engine
        self.topic = topic
        self.result = result
        self.worker_id = f"mock-worker:{topic}"
        self.calls: list[TaskContext] = []

    def poll(self) -> int:
        """Handle every task of the topic a worker could fetch now; returns how many."""
        service = self.engine.external_tasks
        tasks = service.fetch_and_lock(self.worker_id, topics=[self.topic], max_tasks=100)
        for task in tasks:
            self._handle(task)
        return len(tasks)

    def _handle(self, task: ExternalTask) -> None:
        service = self.engine.external_tasks
        ctx = service.context(task)
        self.calls.append(ctx)
        try:
            variables = check_variables(
                _outcome(self.result, ctx), f"mock worker of topic '{self.topic}'"
            )
        except BpmnError as err:
            service.handle_bpmn_error(
                task.id, self.worker_id, err.code, message=err.message, variables=err.variables
            )
            return
        except Exception as exc:  # noqa: BLE001 - reported as the worker's failure
            retryable = service.retry_policy(task).is_retryable(exc)
            service.handle_failure(
                task.id,
                self.worker_id,
                f"{type(exc).__name__}: {exc}",
                error_details=traceback.format_exc(),
                retries=None if retryable else 0,
            )
            return
        service.complete(task.id, self.worker_id, variables=dict(variables))


class ProcessEnvironment:
    """An engine on a ``ManualClock`` with the helpers of a process test."""

    def __init__(self, engine: ProcessEngine, clock: ManualClock) -> None:
        if engine.clock is not clock:
            raise ValueError("the environment's clock must be the engine's clock")
        self.engine = engine
        self.clock = clock
        self.workers: dict[str, MockWorker] = {}
        self._replaced: list[tuple[str, Any]] = []  # (handler name, previous handler or None)

    @classmethod
    @contextmanager
    def create(
        cls, url: str = "sqlite://", clock: ManualClock | None = None, **engine_options: Any
    ) -> Iterator[ProcessEnvironment]:
        """A fresh engine (in-memory SQLite unless ``url``) in an environment, closed after;
        ``assert_that`` uses its engine inside the ``with`` block."""
        from engine.engine import ProcessEngine

        clock = clock or ManualClock()
        with ProcessEngine(url, clock=clock, **engine_options) as engine, use_engine(engine):
            env = cls(engine, clock)
            try:
                yield env
            finally:
                env.close()

    def now(self) -> datetime:
        return self.clock.now()

    # -- the process ----------------------------------------------------------------------

    def deploy(self, source: Any, name: str | None = None) -> Deployment:
        return self.engine.deploy(source, name=name)

    def start(
        self,
        process_key: str,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
    ) -> ProcessInstance:
        """Start an instance, run what falls due, return the instance as it is then."""
        inst = self.engine.start(process_key, variables=variables, business_key=business_key)
        self.run()
        return self.engine.get_instance(inst.id)

    def complete_user_task(
        self,
        instance: ProcessInstance | str,
        activity_id: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> ProcessInstance:
        """Complete the user (or manual, or receive) task ``activity_id`` of the instance; without
        it, the one such task it waits at. ``complete_user_task("Approve")`` (an activity id
        instead of an instance) completes it in the one instance waiting there. Runs what falls
        due after; returns the instance."""
        __tracebackhide__ = True
        instance_id = instance.id if isinstance(instance, ProcessInstance) else instance
        if activity_id is None and not isinstance(instance, ProcessInstance):
            if self._instance_exists(instance_id):
                activity_id = self._only_task(instance_id)
            else:
                activity_id, instance_id = instance_id, self._only_instance_at(instance_id)
        elif activity_id is None:
            activity_id = self._only_task(instance_id)
        self.engine.complete_task(instance_id, activity_id, variables=dict(variables or {}))
        self.run()
        return self.engine.get_instance(instance_id)

    def _instance_exists(self, instance_id: str) -> bool:
        try:
            self.engine.get_instance(instance_id)
        except NotFound:
            return False
        return True

    def _only_instance_at(self, activity_id: str) -> str:
        __tracebackhide__ = True
        found = [i.id for i in self.engine.instances() if activity_id in i.waiting_at]
        if len(found) != 1:
            raise AssertionError(
                f"complete_user_task('{activity_id}'): {len(found)} instances wait there "
                f"({', '.join(found) or 'none'}); pass the instance"
            )
        return found[0]

    def _only_task(self, instance_id: str) -> str:
        __tracebackhide__ = True
        inst = self.engine.get_instance(instance_id)
        graph = process_graph(self.engine, inst)
        kinds = ("userTask", "manualTask", "receiveTask")
        found = [
            a
            for a in inst.waiting_at
            if graph is not None and a in graph.nodes and graph.nodes[a].type in kinds
        ]
        if len(found) != 1:
            what = "no user task" if not found else f"{len(found)} user tasks ({', '.join(found)})"
            raise AssertionError(
                f"complete_user_task: instance {instance_id} waits at {what}; name the "
                f"activity (it waits at: {', '.join(inst.waiting_at) or 'nothing'})"
            )
        return found[0]

    def correlate(
        self,
        message: str,
        variables: Mapping[str, Any] | None = None,
        *,
        correlation: Mapping[str, Any] | None = None,
        business_key: str | None = None,
    ) -> ProcessInstance:
        """Correlate a message (``eng.correlate_message``), then run what falls due."""
        result = self.engine.correlate_message(
            message,
            variables=dict(variables or {}),
            correlation=dict(correlation) if correlation is not None else None,
            business_key=business_key,
        )
        self.run()
        return self.engine.get_instance(result.id)

    def assert_that(self, instance: ProcessInstance | str) -> ProcessInstanceAssert:
        return assert_that(instance, engine=self.engine)

    # -- mocks ----------------------------------------------------------------------------

    def mock_worker(self, topic: str, result: MockResult = None) -> MockWorker:
        """Complete the external tasks of ``topic`` as they appear, with ``result``: variables,
        a function of the task's ``TaskContext``, a ``BpmnError`` (the error path) or another
        exception (a failure, retried by the task's policy). Mocking a topic again replaces
        the earlier mock. Tasks already waiting are handled now."""
        worker = self.workers[topic] = MockWorker(self.engine, topic, result)
        self.run()
        return worker

    def mock_handler(self, name: str, result: MockResult = None) -> MockHandler:
        """Replace the handler registered as ``name`` (or register one) until ``close()``:
        returns ``result`` (variables or None), calls it (a function of the ``TaskContext``)
        or raises it (a ``BpmnError`` or a technical failure)."""
        self._replaced.append((name, self.engine.handler_for(name)))
        mock = MockHandler(name, result)
        self.engine.register_handler(name, mock)
        return mock

    def close(self) -> None:
        """Undo the mocks: handlers back as they were, mocked workers stopped."""
        while self._replaced:
            name, previous = self._replaced.pop()
            if previous is not None:
                self.engine.register_handler(name, previous)
            else:
                self.engine.unregister_handler(name)
        self.workers.clear()

    # -- time -----------------------------------------------------------------------------

    def run(self) -> int:
        """Run the jobs due now and let the mocked workers take their tasks, until nothing is
        left to do at this moment; returns how many jobs and tasks were handled."""
        handled = 0
        for _ in range(MAX_ROUNDS):
            done = self.engine.run_jobs()
            done += sum(worker.poll() for worker in list(self.workers.values()))
            if not done:
                return handled
            handled += done
        raise RuntimeError(
            f"still busy after {MAX_ROUNDS} rounds at {self.now()}: the mocks and jobs keep "
            "making work for each other"
        )

    def advance(self, by: float | timedelta) -> int:
        """Move virtual time forward by ``by`` (seconds or timedelta), stopping at every moment
        something falls due (a job, a timer, a mocked topic's task retried later, a lock that
        expires) to run it then; returns how many jobs and tasks were handled."""
        delta = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if delta < timedelta(0):
            raise ValueError(f"advance only moves forward; got {by!r}")
        target = self.now() + delta
        handled = self.run()
        while True:
            now = self.now()
            upcoming = [t for t in self._due_moments() if now < t <= target]
            if not upcoming:
                break
            self.clock.set(min(upcoming))
            handled += self.run()
        if self.now() < target:
            self.clock.set(target)
        return handled + self.run()

    def _due_moments(self) -> list[datetime]:
        moments = [t for t in map(_job_due, self.engine.jobs()) if t is not None]
        for task in self.engine.external_tasks.list():
            if task.topic in self.workers and task.state == "open":
                moments += [t for t in (task.due_at, task.lock_expires_at) if t is not None]
        return moments

    def __enter__(self) -> ProcessEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _job_due(job: Job) -> datetime | None:
    if job.retries_left <= 0:
        return None
    if job.locked_by and job.lock_expires_at is not None:
        return max(job.due_at, job.lock_expires_at)
    return job.due_at


__all__: Sequence[str] = ("MockHandler", "MockResult", "MockWorker", "ProcessEnvironment")
