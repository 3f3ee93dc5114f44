"""``eng.external_tasks``: fetch, lock and report on external tasks (Camunda's external task API).

A service task with ``camunda:type="external"`` (or ``spillway:topic``, or ``spillway:pooled``)
parks and commits a row in ``sw_external_tasks`` with its instance. Workers fetch and lock rows
by topic, do the work, and report by task id. Each report is one transaction:

- ``complete`` / ``handle_bpmn_error`` / a failure without retries change the process: the
  instance is loaded, the parked task completed (or the error thrown, or an incident opened),
  the instance moved on, and everything committed through ``Store.apply`` with the check that
  the task row still exists, locked by the reporting worker (``InstanceWrite.external_held``).
- a failure with retries left, ``extend_lock`` and ``unlock`` change only the task row.

Reports on one instance arriving together from several threads are combined into one write
(``engine.work.external_reports``), so 50 parallel tasks completed at once cost a few writes, not 50
optimistic-locking races. Races with other processes are still settled by the instance's
revision, re-run with jittered backoff inside the engine (``engine.stats["conflicts_retried"]``);
a worker never sees them.

Locks and duplicates, as a worker sees them:

- A report from the worker holding the lock is applied, even after the lock expired as long as
  nobody else fetched the task meanwhile (Camunda refuses it; the work is done, so we keep it).
- A report on a task locked by another worker, or by nobody (unlocked, failed), raises
  ``LockLost``; nothing is applied.
- A completion of a task that is gone because it was completed (or cancelled by an interrupting
  event) is a duplicate: logged at WARNING, ignored, and ``complete`` returns False. An id that
  never named an external task raises ``NotFound``. (The task's id is its history row's id,
  which is how the two are told apart after the row is deleted.)
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from engine.bpmn.specs import activity_config
from engine.core import durations, limits, observe
from engine.core.bounded import BoundedCache
from engine.core.durations import DEFAULT_LOCK_DURATION
from engine.core.errors import EngineError, InvalidArgument, LockLost, NotFound
from engine.core.retry import RetryPolicy
from engine.core.values import ExternalTask, TaskContext
from engine.core.variables import check_variables
from engine.work import external_fetch
from engine.work.external_reports import Report, ReportCombiner, check_lock, lock_lost
from engine.work.host import ExternalHost

log = logging.getLogger("spillway.external")

__all__ = ["DEFAULT_LOCK_DURATION", "ExternalTaskService"]

MAX_FETCH = 1000  # tasks per fetch_and_lock call
CONFIG_CACHE_SIZE = 4096  # (definition, activity) configs kept; a miss reads the model again

F = TypeVar("F", bound=Callable[..., Any])


def _report(name: str) -> Callable[[F], F]:
    """A worker's call on one task: a step of its own (log context, span), and a ``LockLost``
    it raises counted (``Observer.external_lock_lost``)."""

    def decorate(fn: F) -> F:
        traced = observe.command(name, task_id="external_task_id")(fn)

        @functools.wraps(fn)
        def wrapper(self: ExternalTaskService, *args: Any, **kwargs: Any) -> Any:
            try:
                return traced(self, *args, **kwargs)
            except LockLost:
                self.engine.observer.external_lock_lost()
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


class ExternalTaskService:
    """The external-task API of one engine (``ProcessEngine.external_tasks``)."""

    def __init__(self, engine: ExternalHost) -> None:
        self.engine = engine
        self.store = engine.store
        self._reports = ReportCombiner(engine)
        # (definition id, activity id) -> its config and retry policy
        self._configs: BoundedCache[tuple[str, str], tuple[dict[str, Any], RetryPolicy]] = (
            BoundedCache(CONFIG_CACHE_SIZE, "external task configs")
        )

    def caches(self) -> list[BoundedCache[Any, Any]]:
        return [self._configs]

    # -- fetching -----------------------------------------------------------------------

    @observe.command("fetch_and_lock")
    def fetch_and_lock(
        self,
        worker_id: str,
        topics: Sequence[str | tuple[Any, ...] | Mapping[str, Any]],
        max_tasks: int = 10,
        lock_duration: float | timedelta = DEFAULT_LOCK_DURATION,
        variables: Sequence[str] | None = None,
        *,
        use_priority: bool = False,
    ) -> list[ExternalTask]:
        """Lock up to ``max_tasks`` due, unlocked (or lock-expired) tasks of ``topics`` for
        ``worker_id``. ``topics`` is a list of names, ``(name, lock_duration[, variables])``
        tuples or ``{"topic", "lock_duration", "variables"}`` dicts (see ``work.external_fetch``);
        ``variables`` limits the returned variables to those names (None: all). A dict may
        narrow its topic with ``business_key``, ``process_key`` and ``definition_id`` (a string
        or a list). ``use_priority`` fetches higher ``priority`` first."""
        _check_worker(worker_id)
        if isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or max_tasks < 1:
            raise EngineError(f"max_tasks must be an int >= 1, got {limits.shown(max_tasks)}")
        requests = {
            name: self._by_version_tag(r)
            for name, r in external_fetch.parse_topics(topics, lock_duration, variables).items()
        }
        now = self.engine.now()
        expiry = {name: now + timedelta(seconds=r.lock_duration) for name, r in requests.items()}
        filters = {name: r.filters() for name, r in requests.items() if r.filters()}
        rows = self.store.lock_external_tasks(
            worker_id,
            expiry,
            now,
            min(max_tasks, MAX_FETCH),
            filters=filters or None,
            by_priority=use_priority,
        )
        for topic, n in collections.Counter(r["topic"] for r in rows).items():
            self.engine.observer.external_fetched(topic, n)
        return self._tasks(rows, {name: r.variables for name, r in requests.items()})

    def _by_version_tag(self, request: external_fetch.TopicRequest) -> external_fetch.TopicRequest:
        """A ``version_tag`` filter as the definition ids that carry the tag (each definition's
        model is parsed once per engine and cached)."""
        if request.version_tag is None:
            return request
        commands = self.engine.commands
        tagged = set()
        for row in self.store.all_definitions():
            try:
                tag = commands.model(row).version_tag
            except EngineError:
                continue  # a definition whose stored source no longer compiles has no tag here
            if tag == request.version_tag:
                tagged.add(str(row["id"]))
        if request.definition_ids is not None:
            tagged &= set(request.definition_ids)
        return dataclasses.replace(request, definition_ids=tuple(sorted(tagged)))

    def get(self, task_id: str) -> ExternalTask:
        limits.check_id(task_id, "task_id")
        row = self.store.external_task(task_id)
        if row is None:
            raise NotFound(f"no open external task with id '{task_id}'")
        return self._tasks([row], {})[0]

    def _tasks(
        self, rows: list[dict[str, Any]], only: Mapping[str, tuple[str, ...] | None]
    ) -> list[ExternalTask]:
        if not rows:
            return []
        states = self.store.instance_states(sorted({r["instance_id"] for r in rows}))
        parsed: dict[str, external_fetch.InstanceData] = {}
        out = []
        for row in rows:
            iid = row["instance_id"]
            state = states.get(iid)
            data: Mapping[str, Any] = {}
            if state is not None:
                if iid not in parsed:
                    parsed[iid] = external_fetch.InstanceData(state["data"], state["variables"])
                data = parsed[iid].task_data(row["task_id"])
            out.append(
                ExternalTask(
                    id=row["id"],
                    topic=row["topic"],
                    instance_id=iid,
                    activity_id=row["activity_id"],
                    variables=external_fetch.select(data, only.get(row["topic"])),
                    retries=row["retries"],
                    lock_expires_at=row["lock_expires_at"],
                    business_key=row["business_key"],
                    worker_id=row["lock_owner"],
                    error_message=row["error_message"],
                    error_details=row["error_details"],
                    created_at=row["created_at"],
                    process_key=row["process_key"],
                    state=row["state"],
                    attempts=int(row["attempts"]),
                    due_at=row["due_at"],
                    priority=int(row["priority"]),
                    definition_id=state["definition_id"] if state is not None else None,
                )
            )
        return out

    # -- reports that change the process ------------------------------------------------

    @_report("external_task.complete")
    def complete(
        self, task_id: str, worker_id: str, variables: Mapping[str, Any] | None = None
    ) -> bool:
        """Apply the variables, complete the task and move its instance on. True when applied;
        False for a duplicate (the task was already completed or cancelled), logged at WARNING.
        Raises ``LockLost`` when another worker holds the task (or nobody does)."""
        limits.check_id(task_id, "task_id")
        values = check_variables(variables, f"complete of external task {task_id}")
        return self._report_one("complete", task_id, worker_id, variables=values)

    @_report("external_task.handle_bpmn_error")
    def handle_bpmn_error(
        self,
        task_id: str,
        worker_id: str,
        code: str,
        message: str = "",
        variables: Mapping[str, Any] | None = None,
    ) -> bool:
        """Throw BPMN error ``code`` from the task: a matching error boundary event or error
        event subprocess takes the path (with ``variables`` set); uncaught, an incident opens
        and the task waits for ``eng.retry``. False for a duplicate, like ``complete``."""
        limits.check_id(task_id, "task_id")
        if not isinstance(code, str) or not code:
            raise EngineError(f"handle_bpmn_error needs an error code, got {limits.shown(code)}")
        limits.check_name(code, "code")
        message = limits.check_text(message, "message")
        values = check_variables(variables, f"BPMN error of external task {task_id}")
        return self._report_one(
            "bpmn_error", task_id, worker_id, variables=values, code=code, message=message
        )

    @_report("external_task.handle_failure")
    def handle_failure(
        self,
        task_id: str,
        worker_id: str,
        error_message: str,
        error_details: str | None = None,
        retries: int | None = None,
        retry_timeout: float | timedelta | None = None,
    ) -> bool:
        """Report a technical failure. With ``retries > 0`` the task is unlocked and fetchable
        again after ``retry_timeout`` seconds, its ``retries`` set; with ``retries == 0`` an
        incident opens (kind ``failed-external-task``, instance state ``incident``) until
        ``eng.retry(incident_id, retries=n)``. ``retries`` None follows the task's retry policy
        (``spillway:retries``, ``camunda:failedJobRetryTimeCycle``, the engine's default) and so
        does a missing ``retry_timeout``. False for a duplicate, like ``complete``."""
        _check_worker(worker_id)
        limits.check_id(task_id, "task_id")
        error_message = limits.check_text(error_message, "error_message")
        if error_details is not None:
            error_details = limits.check_text(error_details, "error_details")
        row = self.store.external_task(task_id)
        if row is None:
            return self._reports.gone(task_id, "failure report")
        check_lock(row, worker_id)
        if retries is not None:
            limits.check_count(retries, "retries")
        if retries is None or retry_timeout is None:
            left, delay = self.policy_decision(row, retryable=True)
            retries = left if retries is None else retries
            timeout = delay if retry_timeout is None else _timeout(retry_timeout)
        else:
            timeout = _timeout(retry_timeout)
        message = str(error_message or "failed")
        if retries == 0:
            return self._report_one(
                "incident", task_id, worker_id, message=message, details=error_details, row=row
            )
        due = self.engine.now() + timedelta(seconds=timeout)
        values = {
            "retries": retries,
            "due_at": due,
            "error_message": message,
            "error_details": error_details,
        }
        if not self.store.reschedule_external_task(task_id, worker_id, values):
            fresh = self.store.external_task(task_id)
            if fresh is None:
                return self._reports.gone(task_id, "failure report")
            check_lock(fresh, worker_id)
            raise LockLost(f"external task {task_id}: changed while the failure was reported")
        log.warning(
            "external task %s (instance %s, activity '%s') failed: %s; %d retries left, due at %s",
            task_id,
            row["instance_id"],
            row["activity_id"],
            message,
            retries,
            due.isoformat(),
            extra={
                "instance_id": row["instance_id"],
                "activity_id": row["activity_id"],
                "topic": row["topic"],
            },
        )
        self.engine.commands.wake(row["instance_id"])
        return True

    def policy_decision(self, row: Mapping[str, Any], retryable: bool) -> tuple[int, float]:
        """(retries left, seconds until the next attempt) after one more failure of the task
        under its retry policy. The first failure starts from the policy's ``retries``; later
        ones count down the task's ``retries`` (which an operator's ``retry`` may have set)."""
        if not retryable:
            return 0, 0.0
        policy = self._policy(row)
        left = policy.retries if row["retries"] is None else int(row["retries"]) - 1
        if left <= 0:
            return 0, 0.0
        failures = int(row["attempts"]) + 1
        delay = policy.next_delay(min(failures, policy.retries)) if policy.retries else None
        return left, delay.total_seconds() if delay is not None else 0.0

    @observe.command("external_task.report_all")
    def report_all(
        self,
        reports: Iterable[tuple[str, str | ExternalTask, str, Mapping[str, Any]]],
        *,
        checked: bool = False,
    ) -> list[Any]:
        """Apply several reports at once, combined per instance: ``(kind, task, worker_id,
        payload)`` with kind ``"complete"`` (payload: variables) or ``"bpmn_error"`` (payload:
        code, message, variables); ``task`` is an id or a fetched ``ExternalTask``. Returns,
        per report, its outcome (True/False) or the exception it would have raised. Worker
        pools and bridges use it for a batch of results. ``checked``: the variables already
        passed ``check_variables`` (a pool checks its handler's result when it returns)."""
        items = list(reports)
        ids = [t for _, t, _, _ in items if isinstance(t, str)]
        rows = self.store.external_tasks_by_id(ids) if ids else {}
        pending: list[Report | Exception] = []
        for kind, task, worker_id, payload in items:
            if isinstance(task, ExternalTask):
                task_id, instance_id = task.id, task.instance_id
            else:
                # No row: resolved (False or NotFound) when applied, no instance to join.
                task_id, instance_id = task, str(rows.get(task, {}).get("instance_id") or "")
            try:
                pending.append(
                    self._make_report(kind, task_id, worker_id, payload, instance_id, checked)
                )
            except Exception as exc:  # noqa: BLE001 - returned per report
                pending.append(exc)
        self._reports.submit([r for r in pending if isinstance(r, Report)])
        out: list[Any] = []
        for item in pending:
            if isinstance(item, BaseException):
                out.append(item)
                continue
            try:
                out.append(item.result())
            except Exception as exc:  # noqa: BLE001 - returned per report
                out.append(exc)
        for _lost in range(sum(isinstance(o, LockLost) for o in out)):
            self.engine.observer.external_lock_lost()
        return out

    def _make_report(
        self,
        kind: str,
        task_id: str,
        worker_id: str,
        payload: Mapping[str, Any],
        instance_id: str,
        checked: bool = False,
    ) -> Report:
        _check_worker(worker_id)
        where = f"external task {task_id}"
        if kind == "complete":
            values = dict(payload) if checked else check_variables(payload, f"complete of {where}")
            return Report(kind, task_id, worker_id, instance_id, values)
        if kind == "bpmn_error":
            code = payload.get("code")
            if not isinstance(code, str) or not code:
                raise EngineError(f"BPMN error of {where} needs a code, got {limits.shown(code)}")
            values = check_variables(payload.get("variables"), f"BPMN error of {where}")
            return Report(
                kind,
                task_id,
                worker_id,
                instance_id,
                values,
                code=code,
                message=str(payload.get("message") or ""),
            )
        raise EngineError(f"unknown report kind {limits.shown(kind)}")

    def _instance_of(self, task_id: str) -> str:
        row = self.store.external_task(task_id)
        if row is None:
            # Resolved (False or NotFound) when applied; no instance to combine with.
            return ""
        return str(row["instance_id"])

    def _report_one(
        self,
        kind: str,
        task_id: str,
        worker_id: str,
        *,
        variables: dict[str, Any] | None = None,
        code: str = "",
        message: str = "",
        details: str | None = None,
        row: Mapping[str, Any] | None = None,
    ) -> bool:
        _check_worker(worker_id)
        instance_id = str(row["instance_id"]) if row is not None else self._instance_of(task_id)
        report = Report(
            kind,
            task_id,
            worker_id,
            instance_id,
            variables or {},
            code=code,
            message=message,
            details=details,
        )
        self._reports.submit([report])
        return report.result()

    # -- lock handling ------------------------------------------------------------------

    @_report("external_task.extend_lock")
    def extend_lock(
        self,
        task_id: str,
        worker_id: str,
        lock_duration: float | timedelta = DEFAULT_LOCK_DURATION,
    ) -> None:
        """Heartbeat: the lock of ``worker_id`` now expires ``lock_duration`` from now."""
        _check_worker(worker_id)
        limits.check_id(task_id, "task_id")
        until = self.engine.now() + timedelta(
            seconds=external_fetch.seconds(lock_duration, "lock_duration")
        )
        if self.store.extend_external_lock(task_id, worker_id, until):
            return
        row = self.store.external_task(task_id)
        if row is None:
            history = self.store.history_row(task_id)
            if history is None:
                raise NotFound(f"no external task with id '{task_id}'")
            raise NotFound(f"external task {task_id} was already {history['outcome'] or 'ended'}")
        raise lock_lost(row, worker_id)

    @_report("external_task.lock")
    def lock(
        self,
        task_id: str,
        worker_id: str,
        lock_duration: float | timedelta = DEFAULT_LOCK_DURATION,
    ) -> ExternalTask:
        """Lock one task by id for ``worker_id`` (Camunda 7's ``lock``), e.g. to complete it by
        hand; ``LockLost`` while another worker holds it."""
        _check_worker(worker_id)
        now = self.engine.now()
        until = now + timedelta(seconds=external_fetch.seconds(lock_duration, "lock_duration"))
        if not self.store.lock_external_task(task_id, worker_id, until, now):
            row = self.store.external_task(task_id)
            if row is None or row["state"] != "open":
                raise NotFound(f"no open external task with id '{task_id}'")
            raise lock_lost(row, worker_id)
        return self.get(task_id)

    def unlock(self, task_id: str) -> None:
        """Release the task's lock whoever holds it: fetchable again at once (when due)."""
        limits.check_id(task_id, "task_id")
        row = self.store.external_task(task_id)
        if row is None or not self.store.unlock_external_task(task_id):
            raise NotFound(f"no open external task with id '{task_id}'")
        self.engine.commands.wake(row["instance_id"])

    def retry(self, task_id: str, retries: int) -> ExternalTask:
        """Operator retry (``eng.retry``): resolve the task's incident, fetchable now. Only a
        failed task (retries spent): an open one may be locked by a worker doing it now."""
        current = self.store.external_task(task_id)
        if current is None:
            raise NotFound(f"no external task with id '{task_id}'")
        if current["state"] != "failed":
            raise EngineError(f"external task {task_id} has not failed; there is nothing to retry")
        try:
            row = self.store.retry_external_task(task_id, retries, self.engine.now())
        except KeyError:
            raise NotFound(f"no external task with id '{task_id}'") from None
        self.engine.commands.wake(row["instance_id"])
        return self._tasks([row], {})[0]

    # -- what pools need ----------------------------------------------------------------

    def context(self, task: ExternalTask) -> TaskContext:
        """The ``TaskContext`` a handler gets for the task: as for a synchronous call of the
        same task, with the external task's id as ``idempotency_key``."""
        config, _ = self._config(task.definition_id, task.activity_id)
        return TaskContext(
            variables=MappingProxyType(task.variables),
            instance_id=task.instance_id,
            activity_id=task.activity_id,
            business_key=task.business_key,
            attempt=task.attempts + 1,
            idempotency_key=task.id,
            process_key=task.process_key,
            topic=task.topic,
            properties=MappingProxyType(dict(config.get("properties") or {})),
        )

    def retry_policy(self, task: ExternalTask) -> RetryPolicy:
        return self._config(task.definition_id, task.activity_id)[1]

    def _policy(self, row: Mapping[str, Any]) -> RetryPolicy:
        found = self.store.instances(ids=[row["instance_id"]])
        definition_id = found[0]["definition_id"] if found else None
        return self._config(definition_id, row["activity_id"])[1]

    def _config(
        self, definition_id: str | None, activity_id: str
    ) -> tuple[dict[str, Any], RetryPolicy]:
        if definition_id is None:
            return {}, self.engine.retry_policy
        key = (definition_id, activity_id)
        cached = self._configs.get(key)
        if cached is not None:
            return cached
        definition = self.store.definition(definition_id)
        if definition is None:
            return {}, self.engine.retry_policy
        model = self.engine.commands.model(definition)
        # A multi-instance activity has two specs of that id; the parked one carries the config.
        found = [ts for ts in model.all_task_specs() if getattr(ts, "bpmn_id", None) == activity_id]
        spec = next((ts for ts in found if activity_config(ts)), found[0] if found else None)
        if spec is None:
            return {}, self.engine.retry_policy
        cached = (activity_config(spec), self.engine.retry_policy_for(model, spec))
        self._configs[key] = cached
        return cached

    # Last in the class: a method named ``list`` would shadow the builtin in annotations below.
    def list(self, topic: str | None = None, instance_id: str | None = None) -> list[ExternalTask]:
        """Every external task (open or failed), oldest first, with all its variables."""
        limits.check_name(topic, "topic", optional=True)
        if instance_id is not None:
            limits.check_id(instance_id, "instance_id")
        return self._tasks(self.store.external_tasks(topic, instance_id), {})


def _check_worker(worker_id: object) -> None:
    if not isinstance(worker_id, str) or not worker_id:
        raise InvalidArgument(
            f"a worker id must be a non-empty string, got {limits.shown(worker_id)}",
            argument="worker_id",
        )
    limits.check_name(worker_id, "worker_id")


def _timeout(value: float | timedelta) -> float:
    return durations.seconds(value, "retry_timeout", maximum=external_fetch.MAX_LOCK_DURATION)
