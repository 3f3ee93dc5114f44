"""Worker pools: threads that run the external tasks of one topic with an ordinary handler.

A pool is the in-engine consumer of the external task table (the seed's "one thread pool per
task type over a database task queue"):

    acquire -> run the handler -> report -> wait

- One acquisition thread fetches and locks up to ``max_per_acquisition`` tasks whenever its
  local queue is empty, so a pool holds at most ``max_size`` running plus
  ``max_per_acquisition`` queued tasks. A queued task whose lock has run down to half of
  ``lock_duration`` gets it extended before its handler starts.
- Worker threads (``core_size`` always, up to ``max_size`` while a backlog is queued; an extra
  thread idle for ``keep_alive`` seconds ends) call the handler with the same ``TaskContext`` a
  synchronous call would get, its ``idempotency_key`` being the external task's id.
- A reporter thread sends results in bulk (``ExternalTaskService.report_all``) once every
  fetched task was handled (or ``REPORT_LINGER`` after the first result), so results for one
  instance land in one write. A raise is reported as a failure under the task's retry
  policy (backoff from ``RetryPolicy.next_delay``, an incident when retries are spent or the
  error is non-retryable); a ``BpmnError`` takes the error path.
- Waiting wakes at once when this process commits new tasks (an engine listener), when another
  node does (PostgreSQL ``LISTEN``, ``engine.storage.notify``), or after ``acquire_wait`` seconds.

Several pools of one topic, in one process or on several hosts sharing PostgreSQL, share the
work; a crashed pool's tasks come back to the others when their locks expire.
``stop()`` is graceful: no new fetches, queued tasks unlocked at once, running handlers finished
and reported (up to ``timeout``).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import tomllib
import traceback
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from engine.core import observe
from engine.core.durations import DEFAULT_LOCK_DURATION
from engine.core.errors import BpmnError, EngineError, LockLost, NotFound
from engine.core.stats import Counters
from engine.core.values import ExternalTask, TaskContext
from engine.core.variables import check_variables
from engine.runtime.activation import Failure, Handler
from engine.storage.notify import NotifyListener
from engine.work.external_fetch import seconds
from engine.work.host import PoolHost
from engine.work.job_runner import new_owner

log = logging.getLogger("spillway.pool")

# Defaults (issue 18): enough threads for handlers that wait on I/O, a fetch large enough for
# the tasks of a 50-fold multi-instance to come (and be reported) together. Idle threads cost
# nothing: they wait for tasks without polling.
DEFAULT_CORE_SIZE = 4
DEFAULT_MAX_SIZE = 8
DEFAULT_MAX_PER_ACQUISITION = 100
DEFAULT_KEEP_ALIVE = 60.0  # seconds an extra thread may idle before it ends
DEFAULT_ACQUIRE_WAIT = 5.0  # seconds between fetches when nothing wakes the pool
#: Seconds a handled task's result may wait for the rest of its fetch before it is reported.
REPORT_LINGER = 0.05

Result = tuple[str, ExternalTask, Mapping[str, Any]]


class WorkerPool:
    """Threads running ``handler`` for the external tasks of ``topic`` (``eng.worker_pool``)."""

    def __init__(
        self,
        engine: PoolHost,
        topic: str,
        handler: Handler | None = None,
        *,
        core_size: int | None = None,
        max_size: int | None = None,
        keep_alive: float = DEFAULT_KEEP_ALIVE,
        acquire_wait: float = DEFAULT_ACQUIRE_WAIT,
        max_per_acquisition: int | None = None,
        lock_duration: float | timedelta = DEFAULT_LOCK_DURATION,
        worker_id: str | None = None,
        listen: bool = True,
    ) -> None:
        if not isinstance(topic, str) or not topic:
            raise EngineError(f"a worker pool needs a topic, got {topic!r}")
        found = handler if handler is not None else engine.handler_for(topic)
        if found is None or not callable(found):
            raise EngineError(
                f"worker pool '{topic}': no handler given and none registered under '{topic}'"
            )
        if core_size is None:  # the default never exceeds a max_size given
            core_size = DEFAULT_CORE_SIZE
            if isinstance(max_size, int) and not isinstance(max_size, bool) and max_size >= 1:
                core_size = min(core_size, max_size)
        max_size = max(core_size, DEFAULT_MAX_SIZE) if max_size is None else max_size
        _positive_int("core_size", core_size, topic)
        _positive_int("max_size", max_size, topic)
        if max_size < core_size:
            raise EngineError(f"worker pool '{topic}': max_size {max_size} < core_size {core_size}")
        per_fetch = (
            max(max_size, DEFAULT_MAX_PER_ACQUISITION)
            if max_per_acquisition is None
            else max_per_acquisition
        )
        _positive_int("max_per_acquisition", per_fetch, topic)
        self.engine = engine
        self.topic = topic
        self.handler: Handler = found
        self.core_size = core_size
        self.max_size = max_size
        self.keep_alive = seconds(keep_alive, f"worker pool '{topic}': keep_alive")
        self.acquire_wait = seconds(acquire_wait, f"worker pool '{topic}': acquire_wait")
        self.max_per_acquisition = per_fetch
        self.lock_duration = seconds(lock_duration, f"worker pool '{topic}': lock_duration")
        self.worker_id = worker_id or new_owner(f"pool-{topic}")
        self.listen = listen
        #: completed, duplicates, failed, bpmn_errors, lock_lost, unlocked, fetched
        self.stats = Counters()
        # One lock, three conditions, so an event wakes only the thread that waits for it:
        # ``_cond`` the acquisition thread (woken, or the queue ran empty), ``_work`` the
        # worker threads (tasks queued), ``_reported`` the reporter (results waiting).
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._work = threading.Condition(lock)
        self._reported = threading.Condition(lock)
        self._wakeups = 0  # bumped by every wake(): no wake-up is lost between check and wait
        self._queue: collections.deque[ExternalTask] = collections.deque()
        self._results: list[Result] = []
        self._threads = 0
        self._idle = 0
        self._running = 0  # handlers running now
        self._started = False
        self._stopping = threading.Event()
        self._acquirer: threading.Thread | None = None
        self._reporter: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._notify: NotifyListener | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> WorkerPool:
        with self._cond:
            if self._started:
                return self
            self._started = True
            for _ in range(self.core_size):
                self._spawn_worker()
        self.engine.commands.add_listener(self._on_commit)
        self._acquirer = self._thread(self._acquire_loop, "acquire")
        self._reporter = self._thread(self._report_loop, "report")
        if self.listen:
            name = f"pool-{self.topic}"
            self._notify = NotifyListener(self.engine.store, self.wake, name).start()
        log.info(
            "worker pool %s: topic '%s', %d-%d threads",
            self.worker_id,
            self.topic,
            self.core_size,
            self.max_size,
        )
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop fetching, unlock queued tasks, let running handlers finish and their results
        be reported (up to ``timeout`` seconds; None waits as long as they take)."""
        if self._stopping.is_set() or not self._started:
            self._stopping.set()
            return
        self._stopping.set()
        self.engine.commands.remove_listener(self._on_commit)
        self.wake()
        with self._cond:
            self._work.notify_all()
            self._reported.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._acquirer is not None:
            self._acquirer.join(_remaining(deadline))
        self._unlock_queued()
        for thread in list(self._workers):
            thread.join(_remaining(deadline))
        if self._reporter is not None:
            self._reporter.join(_remaining(deadline))
        if self._notify is not None:
            self._notify.stop(_remaining(deadline) if deadline is not None else 5.0)
        log.info("worker pool %s stopped: %s", self.worker_id, self.stats.snapshot())

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wake(self) -> None:
        """Fetch now (new tasks may be there): the acquisition thread stops waiting."""
        with self._cond:
            self._wakeups += 1
            self._cond.notify_all()

    def _on_commit(self, _instance_id: str) -> None:
        self.wake()

    @property
    def threads(self) -> int:
        """Worker threads alive now (between core_size and max_size)."""
        with self._cond:
            return self._threads

    def pending(self) -> int:
        """Tasks of the topic fetchable now (by this pool or any other consumer)."""
        return self.engine.store.count_fetchable_external([self.topic], self.engine.now())

    def busy(self) -> bool:
        """Tasks held: queued, running, or with a result not yet reported."""
        with self._cond:
            return bool(self._queue or self._running or self._results)

    # -- step by step (tests and scripts) -----------------------------------------------

    def run_once(self) -> int:
        """Fetch one batch and run it in this thread, reporting before returning; returns how
        many tasks were fetched. For tests: no threads needed."""
        tasks = self._fetch()
        results = [r for r in (self._run(task) for task in tasks) if r is not None]
        self._report(results)
        return len(tasks)

    # -- the threads --------------------------------------------------------------------

    def _thread(self, target: Any, role: str) -> threading.Thread:
        thread = threading.Thread(
            target=target, name=f"spillway-pool-{self.topic}-{role}", daemon=True
        )
        thread.start()
        return thread

    def _spawn_worker(self) -> None:
        # Caller holds self._cond.
        self._threads += 1
        self._workers = [t for t in self._workers if t.is_alive()]
        self._workers.append(self._thread(self._work_loop, "worker"))

    def _fetch(self) -> list[ExternalTask]:
        tasks = self.engine.external_tasks.fetch_and_lock(
            self.worker_id,
            [(self.topic, self.lock_duration)],
            max_tasks=self.max_per_acquisition,
        )
        if tasks:
            self.stats.add("fetched", len(tasks))
        return tasks

    def _acquire_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                # Fetch only when the queue is empty: queued tasks' locks are ticking.
                while self._queue and not self._stopping.is_set():
                    self._cond.wait(self.acquire_wait)
                seen = self._wakeups
            if self._stopping.is_set():
                return
            try:
                tasks = self._fetch()
            except Exception:
                log.exception("worker pool %s: fetching failed", self.worker_id)
                tasks = []
            with self._cond:
                if tasks:
                    self._queue.extend(tasks)
                    backlog = len(self._queue) - self._idle
                    while backlog > 0 and self._threads < self.max_size:
                        self._spawn_worker()
                        backlog -= 1
                    self._work.notify(len(tasks))
                    continue
                if self._wakeups == seen and not self._stopping.is_set():
                    self._cond.wait(self.acquire_wait)

    def _work_loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._cond:
                task = None
                while not self._queue:
                    if self._stopping.is_set() or (
                        self._threads > self.core_size
                        and time.monotonic() - idle_since >= self.keep_alive
                    ):
                        self._threads -= 1
                        self._reported.notify_all()  # the reporter may be waiting to end
                        return
                    self._idle += 1
                    # Woken when tasks are queued or the pool stops; the timeout only ends
                    # an extra thread that idled for keep_alive.
                    self._work.wait(self.keep_alive)
                    self._idle -= 1
                task = self._queue.popleft()
                self._running += 1
                if not self._queue:
                    self._cond.notify_all()  # the acquisition thread may fetch again
            result = None
            try:
                result = self._run(task) if not self._stopping.is_set() else None
                if self._stopping.is_set() and result is None:
                    self._unlock(task)
            finally:
                with self._cond:
                    self._running -= 1
                    if result is not None:
                        self._results.append(result)
                    if self._report_due():
                        self._reported.notify()
            idle_since = time.monotonic()

    def _report_due(self) -> bool:
        """Whether the reporter should send what is waiting (caller holds the lock): once
        every fetched task was handled, so the results of one fetch (the tasks of one instance
        come together) land in one write per instance; or a fetch's worth piled up; or the
        pool stops."""
        if not self._results:
            return False
        return (
            (not self._queue and not self._running)
            or len(self._results) >= self.max_per_acquisition
            or self._stopping.is_set()
        )

    def _report_loop(self) -> None:
        while True:
            with self._cond:
                first_seen: float | None = None
                while True:
                    if self._report_due():
                        break
                    if self._results:
                        # Slow handlers: results do not wait longer than REPORT_LINGER for
                        # the rest of their fetch.
                        now = time.monotonic()
                        first_seen = now if first_seen is None else first_seen
                        if now - first_seen >= REPORT_LINGER:
                            break
                        self._reported.wait(REPORT_LINGER - (now - first_seen))
                        continue
                    if self._stopping.is_set() and not self._running and self._threads == 0:
                        return
                    self._reported.wait(1.0)
                batch, self._results = self._results, []
            try:
                self._report(batch)
            except Exception:
                log.exception(
                    "worker pool %s: reporting %d results failed", self.worker_id, len(batch)
                )

    # -- one task -----------------------------------------------------------------------

    def _run(self, task: ExternalTask) -> Result | None:
        """Call the handler; a completion or BPMN error to report, or None (a failure is
        reported here, a task whose lock was lost is skipped)."""
        if not self._fresh_lock(task):
            return None
        svc = self.engine.external_tasks
        about = observe.step(  # the log context of every line about this task
            None,
            instance_id=task.instance_id,
            activity_id=task.activity_id,
            external_task_id=task.id,
            worker_id=self.worker_id,
            topic=task.topic,
            attempt=task.attempts + 1,
        )
        with about:
            try:
                ctx: TaskContext = svc.context(task)
                name = getattr(self.handler, "__qualname__", self.topic)
                with observe.step("spillway.handler", handler=name, attempt=ctx.attempt):
                    result = self.handler(ctx)
                variables = check_variables(
                    result, f"handler of topic '{self.topic}' for task '{task.activity_id}'"
                )
            except BpmnError as err:
                payload = {"code": err.code, "message": err.message, "variables": err.variables}
                return ("bpmn_error", task, payload)
            except Exception as exc:  # noqa: BLE001 - a handler's failure, reported below
                self._fail(task, Failure(exc, traceback.format_exc()))
                return None
        return ("complete", task, variables)

    def _fresh_lock(self, task: ExternalTask) -> bool:
        """Extend a queued task's lock that ran down to half its duration; False if lost."""
        expires = task.lock_expires_at
        if expires is None:
            return True
        left = (expires - self.engine.now()).total_seconds()
        if left >= self.lock_duration / 2:
            return True
        try:
            self.engine.external_tasks.extend_lock(task.id, self.worker_id, self.lock_duration)
            return True
        except (LockLost, NotFound) as exc:
            self.stats.add("lock_lost")
            log.warning(
                "worker pool %s: task %s skipped: %s",
                self.worker_id,
                task.id,
                exc,
                extra=self._about(task),
            )
            return False

    def _about(self, task: ExternalTask) -> dict[str, Any]:
        """The log fields of a line about ``task`` (engine.core.logjson)."""
        return {
            "instance_id": task.instance_id,
            "activity_id": task.activity_id,
            "external_task_id": task.id,
            "worker_id": self.worker_id,
            "topic": task.topic,
        }

    def _fail(self, task: ExternalTask, failure: Failure) -> None:
        svc = self.engine.external_tasks
        retryable = svc.retry_policy(task).is_retryable(failure.error)
        log.warning(
            "worker pool %s: task %s (instance %s, activity '%s') failed: %s",
            self.worker_id,
            task.id,
            task.instance_id,
            task.activity_id,
            failure.message,
        )
        try:
            svc.handle_failure(
                task.id,
                self.worker_id,
                failure.message,
                error_details=failure.stacktrace,
                retries=None if retryable else 0,
            )
            self.stats.add("failed")
        except (LockLost, NotFound) as exc:
            self.stats.add("lock_lost")
            log.warning(
                "worker pool %s: failure of task %s not recorded: %s", self.worker_id, task.id, exc
            )

    def _report(self, results: list[Result]) -> None:
        if not results:
            return
        outcomes = self.engine.external_tasks.report_all(
            ((kind, task, self.worker_id, payload) for kind, task, payload in results),
            checked=True,  # _run checked each handler's result
        )
        for (kind, task, _), outcome in zip(results, outcomes, strict=True):
            if outcome is True:
                self.stats.add("completed" if kind == "complete" else "bpmn_errors")
            elif outcome is False:
                self.stats.add("duplicates")
            elif isinstance(outcome, LockLost | NotFound):
                self.stats.add("lock_lost")
                log.warning(
                    "worker pool %s: result of task %s dropped: %s",
                    self.worker_id,
                    task.id,
                    outcome,
                    extra=self._about(task),
                )
            else:
                self.stats.add("report_errors")
                log.error(
                    "worker pool %s: result of task %s (instance %s) not applied: %s",
                    self.worker_id,
                    task.id,
                    task.instance_id,
                    outcome,
                    extra=self._about(task),
                )

    def _unlock(self, task: ExternalTask) -> None:
        try:
            self.engine.external_tasks.unlock(task.id)
            self.stats.add("unlocked")
        except NotFound:
            pass  # completed or cancelled meanwhile

    def _unlock_queued(self) -> None:
        with self._cond:
            queued, self._queue = list(self._queue), collections.deque()
            self._cond.notify_all()
        for task in queued:
            self._unlock(task)


def _positive_int(name: str, value: object, topic: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EngineError(f"worker pool '{topic}': {name} must be an int >= 1, got {value!r}")


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


#: Keys of a ``[pools.<topic>]`` table in a pools file, with their types.
POOL_KEYS: dict[str, tuple[type, ...]] = {
    "handler": (str,),
    "core_size": (int,),
    "max_size": (int,),
    "max_per_acquisition": (int,),
    "keep_alive": (int, float),
    "acquire_wait": (int, float),
    "lock_duration": (int, float),
}


def load_pools(engine: PoolHost, path: str | os.PathLike[str]) -> list[WorkerPool]:
    """The worker pools a TOML file describes, not started; handlers come from ``engine``::

    [pools.copy]          # the topic
    handler = "copy"      # a registered handler's name; default: the topic
    core_size = 2
    max_size = 4
    max_per_acquisition = 50
    lock_duration = 60.0  # seconds; also keep_alive, acquire_wait
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as fh:
            document = tomllib.load(fh)
    except OSError as exc:
        raise EngineError(f"{where}: cannot read the pools file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise EngineError(f"{where}: not valid TOML: {exc}") from exc
    unknown = set(document) - {"pools"}
    tables = document.get("pools")
    if unknown or not isinstance(tables, dict) or not tables:
        raise EngineError(f"{where}: expected [pools.<topic>] tables and nothing else")
    pools = []
    for topic, table in tables.items():
        prefix = f"{where}: pools.{topic}"
        if not isinstance(table, dict):
            raise EngineError(f"{prefix}: expected a table of settings")
        for key, value in table.items():
            kinds = POOL_KEYS.get(key)
            if kinds is None:
                raise EngineError(f"{prefix}: unknown key '{key}' (known: {', '.join(POOL_KEYS)})")
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise EngineError(f"{prefix}.{key}: expected {kinds[0].__name__}, got {value!r}")
        options = dict(table)
        name = str(options.pop("handler", topic))
        handler = engine.handler_for(name)
        if handler is None:
            raise EngineError(f"{prefix}: no handler registered under '{name}' (use --app)")
        try:
            pools.append(WorkerPool(engine, topic, handler, **options))
        except EngineError as exc:
            raise EngineError(f"{where}: {exc}") from exc
    return pools
