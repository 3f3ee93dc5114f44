"""What a run books besides the instance row: the jobs, incidents and external tasks of its
instance (one ``Ledger`` per run).

Service tasks get continuation and retry jobs and, on failure, incidents; external tasks get
their rows (and outbox messages for published topics); waiting timers get timer jobs; thrown
signals get the job that carries them to other instances. At every finish the ledger is
reconciled with the task tree: rows of tasks that stopped waiting are cancelled or deleted.
Which task holds which job or external task is kept in the instance row (``open_activities``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from SpiffWorkflow.util.task import TaskState

from engine.bpmn import instance_context, loops, mappings, signals, timer_events
from engine.bpmn.specs import activity_config
from engine.bpmn.task_tree import task_by_id
from engine.core import ids
from engine.core.errors import EngineError
from engine.core.retry import RetryPolicy
from engine.expressions import juel
from engine.runtime import rows
from engine.runtime.activation import PARKED_EXTERNAL, PARKED_JOB, PARKED_KEY, Activation, Failure
from engine.runtime.run_view import RunView
from engine.runtime.services import JobContext, Services
from engine.storage.outbox import drop_task, route_task

log = logging.getLogger("spillway.runtime")


class Booked(RunView, Protocol):
    """What a ledger reads of its run (``engine.runtime.run.Run``)."""

    @property
    def services(self) -> Services: ...
    @property
    def wf(self) -> Any: ...
    @property
    def job(self) -> JobContext | None: ...


class Ledger:
    """The jobs, incidents and external tasks one run of an instance writes."""

    def __init__(self, run: Booked, open_activities: Mapping[str, Any]) -> None:
        self.run = run
        #: Jobs waiting on a task of this instance: task id (a continuation) or
        #: "task id/event id" (a timer) -> job id. Reconciled at every finish.
        self.job_keys: dict[str, str] = dict(open_activities.get("jobs", {}))
        #: Open external tasks of this instance: task id -> external task id (reconciled too).
        self.external_keys: dict[str, str] = dict(open_activities.get("external", {}))

    def _job_row(
        self, act: Activation, kind: str, due_at: datetime, retries: int
    ) -> dict[str, Any]:
        return rows.new_job(
            kind,
            instance_id=self.run.instance_id,
            activity_id=act.activity_id,
            task_id=str(act.task.id),
            due_at=due_at,
            retries=retries,
            created_at=self.run.now,
            payload={"sync": True},
            handler=act.handler_name,  # only executors that have it acquire the job
        )

    def add_continuation(self, act: Activation) -> None:
        policy = self.task_policy(act.task)
        row = self._job_row(act, "async-continuation", self.run.now, policy.retries + 1)
        row["payload"] = {"sync": False}
        self.run.write.jobs_insert.append(row)
        self.run.history.add(act.task, act.started_at, None, None)

    def add_async_after(self, act: Activation) -> None:
        row = self._job_row(act, "async-continuation", self.run.now, 1)
        row["payload"] = {"sync": False, "after": True}
        self.run.write.jobs_insert.append(row)
        self.run.history.add(act.task, act.started_at, None, None)

    def stop_capped_loops(self, open_tasks: list[Any]) -> None:
        """A standard loop the iteration cap stopped (engine.bpmn.loops) waits for an operator: an
        incident on a job that resumes the loop when retried."""
        for task in open_tasks:
            if not loops.is_capped(task) or task.internal_data.get(PARKED_KEY) == PARKED_JOB:
                continue
            task.internal_data[PARKED_KEY] = PARKED_JOB
            error = loops.limit_reached(task)
            row = rows.new_job(
                "async-continuation",
                instance_id=self.run.instance_id,
                activity_id=task.task_spec.bpmn_id,
                task_id=str(task.id),
                due_at=self.run.now,
                retries=0,
                created_at=self.run.now,
                payload={"sync": False, "loop": True},
            )
            row["last_error"] = f"{type(error).__name__}: {error}"
            self.run.write.jobs_insert.append(row)
            self.open_incident(task.task_spec.bpmn_id, row["id"], Failure(error, "", False))
            log.warning(
                "instance %s: %s; incident opened",
                self.run.instance_id,
                error,
                extra={"activity_id": task.task_spec.bpmn_id},
            )

    def task_policy(self, task: Any) -> RetryPolicy:
        """The task's retry policy; a ``failedJobRetryTimeCycle`` expression
        (``${retryCycle}``) is evaluated now, over what the task sees."""
        policy = self.run.services.retry_policy_for(self.run.model, task.task_spec)
        cycle = str(activity_config(task.task_spec).get("retry_cycle") or "")
        if "${" not in cycle and "#{" not in cycle:
            return policy
        try:
            text = juel.evaluate(cycle, mappings.view(task))
            parsed = RetryPolicy.parse(str(text))
        except (EngineError, ValueError) as exc:
            log.warning(
                "instance %s: task '%s': failedJobRetryTimeCycle %s: %s; the engine's retry "
                "policy applies",
                self.run.instance_id,
                task.task_spec.bpmn_id,
                cycle,
                exc,
                extra={"activity_id": task.task_spec.bpmn_id},
            )
            return policy
        retries = activity_config(task.task_spec).get("retries")
        parsed = dataclasses.replace(parsed, non_retryable=policy.non_retryable)
        return parsed if retries is None else dataclasses.replace(parsed, retries=int(retries))

    def schedule_retry(self, act: Activation, failure: Failure) -> None:
        policy = self.task_policy(act.task)
        job = self.run.job.row if (self.run.job is not None and act.in_job) else None
        # Failed attempts so far, this one included; the synchronous try counts unless the
        # task was deferred (async-before), whose first attempt is already a job's.
        if job is None:
            failures = 1
        else:
            failures = int(job["attempts"]) + 1 + (1 if job["payload"].get("sync", True) else 0)
        retryable = failure.retryable and policy.is_retryable(failure.error)
        delay = policy.next_delay(failures) if retryable else None
        retries_left = max(policy.retries - (failures - 1), 0) if delay is not None else 0
        due_at = self.run.now + delay if delay is not None else self.run.now
        job_attempts = int(job["attempts"]) + 1 if job is not None else 0
        self.run.history.record(
            act.task, act.started_at, self.run.now, "failed", failure.message, attempt=act.in_job
        )
        if job is None:
            row = self._job_row(act, "async-continuation", due_at, retries_left)
            row.update(last_error=failure.message, stacktrace=failure.stacktrace)
            self.run.write.jobs_insert.append(row)
            job_id = row["id"]
        else:
            job_id = job["id"]
            self.run.write.jobs_update.append(
                {
                    "id": job_id,
                    "attempts": job_attempts,
                    "retries_left": retries_left,
                    "due_at": due_at,
                    "last_error": failure.message,
                    "stacktrace": failure.stacktrace,
                    "locked_by": None,
                    "lock_expires_at": None,
                    "rev": int(job["rev"]) + 1,
                }
            )
        if delay is None:
            self.open_incident(act.activity_id, job_id, failure)
            log.warning(
                "instance %s: task '%s' failed (%s); %s, incident opened",
                self.run.instance_id,
                act.activity_id,
                failure.message,
                "not retryable" if not retryable else "retries exhausted",
                extra={"activity_id": act.activity_id, "attempt": act.attempt},
            )
        else:
            log.warning(
                "instance %s: task '%s' failed (%s); retry %d of %d due at %s",
                self.run.instance_id,
                act.activity_id,
                failure.message,
                job_attempts + 1,
                policy.retries,
                due_at.isoformat(),
                extra={"activity_id": act.activity_id, "attempt": act.attempt},
            )

    def open_incident(self, activity_id: str, job_id: str | None, failure: Failure) -> None:
        self.run.write.incidents_insert.append(
            {
                "id": ids.new_id(),
                "instance_id": self.run.instance_id,
                "activity_id": activity_id,
                "job_id": job_id,
                "kind": "failed-job" if job_id else "failed-external-task",
                "message": failure.message,
                "stacktrace": failure.stacktrace,
                "created_at": self.run.now,
                "resolved_at": None,
            }
        )

    def add_external_task(self, act: Activation, topic: str) -> None:
        # The task's id is its history row's: once the row is gone, history tells a duplicate
        # completion (the activity ended) from an unknown id.
        external_id = self.run.history.add(act.task, act.started_at, None, None)
        self.external_keys[str(act.task.id)] = external_id
        self.run.write.external_insert.append(
            {
                "id": external_id,
                "instance_id": self.run.instance_id,
                "activity_id": act.activity_id,
                "task_id": str(act.task.id),
                "topic": topic,
                "process_key": self.run.model.key,
                "business_key": instance_context.business_key_of(act.task, self.run.business_key),
                "state": "open",
                "retries": None,
                "attempts": 0,
                "error_message": None,
                "error_details": None,
                "lock_owner": None,
                "lock_expires_at": None,
                "due_at": self.run.now,
                "priority": int(activity_config(act.task.task_spec).get("priority") or 0),
                "rev": 1,
                "created_at": self.run.now,
                "completed_at": None,
            }
        )
        route = self.run.services.outbox_route(topic)
        if route is not None:
            # A published topic: the message goes out through the outbox, in this transaction.
            task_row = self.run.write.external_insert[-1]
            route_task(
                self.run.write.outbox_insert, task_row, mappings.view(act.task), route, self.run.now
            )

    def reconcile_external(self) -> None:
        """Delete the external task rows of tasks that stopped waiting for a worker: completed
        through ``eng.external_tasks``, or cancelled (an interrupting event took the path)."""
        inserted = {row["id"]: row for row in self.run.write.external_insert}
        for key, external_id in list(self.external_keys.items()):
            task = task_by_id(self.run.wf, key)
            if (
                task is not None
                and task.state == TaskState.STARTED
                and task.internal_data.get(PARKED_KEY) == PARKED_EXTERNAL
            ):
                continue
            del self.external_keys[key]
            if external_id in inserted:
                self.run.write.external_insert.remove(inserted[external_id])
                drop_task(self.run.write.outbox_insert, external_id)
            elif external_id not in self.run.write.external_delete:
                self.run.write.external_delete.append(external_id)

    def reconcile_jobs(self) -> None:
        """Cancel the jobs of tasks that stopped waiting for them (an interrupting event took
        the path, the activity ended, another gateway branch won), and give every timer that
        started waiting in this run its job."""
        held = self.run.job.row["id"] if self.run.job is not None else None
        inserted = {row["id"]: row for row in self.run.write.jobs_insert}
        for row in self.run.write.jobs_insert:
            if row["task_id"] and row["kind"] == "async-continuation":
                self.job_keys[row["task_id"]] = row["id"]
        # A process without timer events has no timer to wait for: no walk of the tree.
        candidates = (
            self.run.wf.get_tasks(state=TaskState.WAITING) if self.run.model.has_timers else []
        )
        waiting = {w.key: w for w in timer_events.waiting_timers(candidates)}
        for key, job_id in list(self.job_keys.items()):
            if "/" in key:
                alive = key in waiting
            else:
                task = task_by_id(self.run.wf, key)
                alive = (
                    task is not None
                    and task.state == TaskState.STARTED
                    and task.internal_data.get(PARKED_KEY) == PARKED_JOB
                )
            if alive:
                continue
            del self.job_keys[key]
            if job_id in inserted:
                self.run.write.jobs_insert.remove(inserted[job_id])
            elif job_id != held:
                self.run.write.jobs_cancel.append(job_id)
        for key, w in waiting.items():
            if key not in self.job_keys:
                self._add_timer_job(key, w)

    def _add_timer_job(self, key: str, w: timer_events.Waiting) -> None:
        text = w.timer.text(w.task.data)
        carried = timer_events.carried_cycle(w.task, w.timer)
        due, fired = carried if carried else (w.timer.definition(text).first_due(self.run.now), 0)
        if due is None:  # a cycle with no firing left (R0, or its end has passed)
            w.task.internal_data[timer_events.EXHAUSTED] = [
                *w.task.internal_data.get(timer_events.EXHAUSTED, ()),
                w.timer.event_id,
            ]
            return
        policy = self.run.services.retry_policy_for(self.run.model, w.task.task_spec)
        row = rows.new_job(
            "timer",
            instance_id=self.run.instance_id,
            activity_id=w.timer.event_id,
            task_id=str(w.task.id),
            due_at=due,
            retries=policy.retries + 1,
            created_at=self.run.now,
            payload={"sync": False, "event": w.timer.event_id, "text": text, "fired": fired},
        )
        self.run.write.jobs_insert.append(row)
        self.job_keys[key] = str(row["id"])

    def add_signal_jobs(self) -> None:
        """Signals thrown in this call reach other instances through a job committed with it
        (``engine.bpmn.signals``)."""
        for name, variables in signals.thrown(self.run.wf):
            self.run.write.jobs_insert.append(
                rows.new_job(
                    signals.KIND,
                    activity_id=name,
                    due_at=self.run.now,
                    retries=signals.RETRIES,
                    created_at=self.run.now,
                    payload={
                        "name": name,
                        "variables": variables,
                        "signal_id": signals.new_signal_id(),
                        "source": self.run.instance_id,
                    },
                )
            )
