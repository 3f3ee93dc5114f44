"""Executing jobs: async continuations (retries of failed service tasks, async-before/after)
and timers.

A job runs as one command: the instance is loaded, the job's task is moved on, and the new
state is committed together with the job's deletion (or its next retry, or an incident) in one
transaction, and only while this executor still holds the job's lock. A run that loses the
race for the instance gives the job back without counting an attempt.
"""

from __future__ import annotations

import logging
import socket
import traceback
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState

from engine.bpmn import loops, signals, timer_events
from engine.core import observe
from engine.core.durations import DEFAULT_LOCK_DURATION
from engine.core.errors import ConcurrencyConflict, EngineError, NotFound
from engine.runtime import rows
from engine.runtime.activation import PARKED_JOB, PARKED_KEY, Failure
from engine.runtime.commands import has_ended
from engine.runtime.run import Run
from engine.runtime.services import JobContext
from engine.storage.store_jobs import PRELOADED
from engine.work.host import JobHost

log = logging.getLogger("spillway.jobs")

#: How long (seconds) the instance row read at acquisition may stand in for a fresh read.
PRELOAD_MAX_AGE = 1.0
ACQUIRED_AT = "_acquired_at"


def new_owner(prefix: str = "executor") -> str:
    return f"{prefix}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class JobRunner:
    """Runs acquired jobs for one engine."""

    def __init__(self, engine: JobHost, lock_duration: float = DEFAULT_LOCK_DURATION) -> None:
        self.engine = engine
        self.commands = engine.commands
        self.lock_duration = lock_duration

    def acquire(self, owner: str, limit: int, job_id: str | None = None) -> list[dict[str, Any]]:
        now = self.engine.now()
        jobs = self.engine.store.acquire_jobs(
            owner,
            now,
            now + timedelta(seconds=self.lock_duration),
            limit,
            job_id=job_id,
            handlers=self.engine.registered_handlers(),  # never jobs it cannot run
        )
        for job in jobs:
            job[ACQUIRED_AT] = now
        if jobs:
            self.engine.observer.jobs_acquired(jobs)
        return jobs

    def execute(self, job: Mapping[str, Any], owner: str) -> bool:
        """Run one locked job. True when its outcome (success or a counted failure) was
        committed; False when it was given back or its lock was lost."""
        observer = self.engine.observer
        with observe.step(
            "spillway.job",
            job_id=job["id"],
            job_kind=job["kind"],
            instance_id=job["instance_id"],
            activity_id=job["activity_id"],
            attempt=rows.job_attempts(job) + 1,  # as the handler's TaskContext.attempt
        ):
            # Pickup latency on the engine clock: from the job falling due to its start.
            late = (self.engine.now() - job["due_at"]).total_seconds()
            observer.job_started(job, max(late, 0.0))
            outcome = self._execute(job, owner)
            observer.job_finished(job, outcome)
        return outcome != "released"

    def _execute(self, job: Mapping[str, Any], owner: str) -> str:
        """Run one locked job: "executed", "failed" (a counted failure), "dropped" (its
        instance is gone) or "released" (given back, or its lock was lost)."""
        try:
            try:
                outcome = self._run(dict(job), owner)
            except ConcurrencyConflict:
                if self._preloaded(job) is None:
                    raise
                # The copy read at acquisition went stale (a user call moved the instance
                # on): run once more on fresh state before giving the job back.
                outcome = self._run({**job, PRELOADED: None}, owner)
            return outcome
        except ConcurrencyConflict:
            log.info(
                "job %s: instance %s changed meanwhile; released", job["id"], job["instance_id"]
            )
            self.engine.store.release_job(job["id"], owner)
            return "released"
        except NotFound as exc:
            log.warning("job %s: %s; the job is dropped", job["id"], exc)
            self.engine.store.delete_job(job["id"], owner)
            return "dropped"
        except Exception as exc:  # noqa: BLE001 - anything else is this attempt's failure
            failure = Failure(exc, traceback.format_exc())
            log.warning(
                "job %s (instance %s, activity '%s') failed: %s",
                job["id"],
                job["instance_id"],
                job["activity_id"],
                failure.message,
            )
            counted = self._count_failure(dict(job), owner, failure)
            return "failed" if counted else "released"

    def _preloaded(self, job: Mapping[str, Any]) -> dict[str, Any] | None:
        """The instance row read with the job, while it is fresh enough to run on: a job
        that waited (or whose lock expired) reads the instance again, so a handler is not
        called for a task that has since moved on."""
        row: dict[str, Any] | None = job.get(PRELOADED)
        acquired_at = job.get(ACQUIRED_AT)
        if row is None or acquired_at is None:
            return None
        age = (self.engine.now() - acquired_at).total_seconds()
        return row if age <= PRELOAD_MAX_AGE else None

    def _run(self, job: dict[str, Any], owner: str) -> str:
        engine, commands = self.engine, self.commands
        if job["kind"] == "timer-start":
            self._start_by_timer(job, owner)
            return "executed"
        if job["kind"] == signals.KIND:
            payload = job["payload"] or {}
            commands.broadcast_signal(
                str(payload["name"]),
                dict(payload.get("variables") or {}),
                str(payload["signal_id"]),
                exclude=payload.get("source"),
            )
            if not engine.store.delete_job(job["id"], owner):
                raise ConcurrencyConflict(f"job {job['id']}: lock lost")
            return "executed"
        run, has_incident = commands.load(
            job["instance_id"], JobContext(job, owner), row=self._preloaded(job)
        )
        if has_ended(run):
            if not engine.store.delete_job(job["id"], owner):
                raise ConcurrencyConflict(f"job {job['id']}: lock lost")
            return "dropped"
        if run.row is not None and run.row.get("suspended"):
            # Suspended after the acquisition: the job waits for activate().
            raise ConcurrencyConflict(f"instance {job['instance_id']} is suspended")
        run.write.jobs_held = [job["id"]]
        run.write.lock_owner = owner
        kind = job["kind"]
        if kind == "async-continuation":
            self._continue(run, job)
        elif kind == "timer":
            self._fire_timer(run, job)
        else:
            raise EngineError(f"job {job['id']}: unknown kind '{kind}'")
        if job["id"] not in {u["id"] for u in run.write.jobs_update}:
            run.write.jobs_delete.append(job["id"])
        commands.commit(run, has_incident)
        # A handler that failed inside the job books its next retry (or incident) on the job.
        failed = any(u["id"] == job["id"] and u.get("last_error") for u in run.write.jobs_update)
        return "failed" if failed else "executed"

    def _continue(self, run: Run, job: Mapping[str, Any]) -> None:
        payload = job["payload"] or {}
        if payload.get("start"):
            run.advance()
            return
        task_id = job["task_id"]
        task = run.wf.get_task_from_id(UUID(task_id)) if task_id else None
        if (
            task is None
            or task.state != TaskState.STARTED
            or task.internal_data.get(PARKED_KEY) != PARKED_JOB
        ):
            # The task was cancelled (an interrupting boundary event fired) or moved on.
            log.info("job %s: task '%s' no longer waits for it", job["id"], job["activity_id"])
            return
        failures = int(job["attempts"]) + (1 if payload.get("sync", True) else 0)
        if payload.get("after"):
            run.finish_async_after(task)
        elif payload.get("loop"):  # a standard loop stopped by the iteration cap
            task.internal_data.pop(PARKED_KEY, None)
            loops.resume(task)
        else:
            run.reach(task, in_job=True, attempt=failures + 1)
        run.advance()

    def _fire_timer(self, run: Run, job: Mapping[str, Any]) -> None:
        payload = job["payload"] or {}
        task = run.task(job["task_id"])
        timer = None
        if task is not None and task.state == TaskState.WAITING:
            found = [t for t in timer_events.timers_of(task) if t.event_id == payload["event"]]
            timer = found[0] if found and not found[0].has_fired(task) else None
        if task is None or timer is None:
            log.info("job %s: timer '%s' no longer waits", job["id"], job["activity_id"])
            return
        fired = int(payload.get("fired", 0)) + 1
        following = None
        if timer_events.repeats_in_place(task, timer):
            following = timer.definition(payload["text"]).next_due(job["due_at"], fired)
        run.fire_timer(task, timer, following, fired)
        run.advance()

    @staticmethod
    def _rescheduled(job: Mapping[str, Any], due_at: Any, fired: int) -> dict[str, Any]:
        """The next firing of a repeating timer: the same job, due again, attempts reset."""
        return {
            "id": job["id"],
            "due_at": due_at,
            "payload": {**(job["payload"] or {}), "fired": fired},
            "attempts": 0,
            "last_error": None,
            "stacktrace": None,
            "locked_by": None,
            "lock_expires_at": None,
            "rev": int(job["rev"]) + 1,
        }

    def _start_by_timer(self, job: dict[str, Any], owner: str) -> None:
        """A timer start event fired: start an instance through it, and schedule the next
        firing of a cycle, in one transaction."""
        commands = self.commands
        payload = job["payload"] or {}
        definition = commands.store.definition(job["definition_id"] or "")
        if definition is None:
            raise NotFound(f"definition {job['definition_id']} is gone")
        model = commands.model(definition)
        found = [t for t in timer_events.start_timers(model.spec) if t.event_id == payload["event"]]
        if not found:
            raise NotFound(f"process '{model.key}' has no timer start event '{payload['event']}'")
        fired = int(payload.get("fired", 0)) + 1
        following = found[0].definition(payload["text"]).next_due(job["due_at"], fired)
        run = commands.new_run(definition, {}, None)
        run.write.jobs_held = [job["id"]]
        run.write.lock_owner = owner
        run.begin_by_timer(payload["event"])
        if following is not None:
            run.write.jobs_update.append(self._rescheduled(job, following, fired))
        else:
            run.write.jobs_delete.append(job["id"])
        commands.commit(run)

    def _count_failure(self, job: dict[str, Any], owner: str, failure: Failure) -> bool:
        engine = self.engine
        now = engine.now()
        policy = engine.retry_policy
        attempts = int(job["attempts"]) + 1
        # Failed attempts including the synchronous one, as RetryPolicy.next_delay counts them.
        failures = attempts + (1 if (job["payload"] or {}).get("sync", True) else 0)
        retries_left = max(int(job["retries_left"]) - 1, 0)
        delay = policy.next_delay(failures) if retries_left > 0 else None
        update = {
            "id": job["id"],
            "attempts": attempts,
            "retries_left": retries_left if delay is not None else 0,
            "due_at": now + delay if delay is not None else now,
            "last_error": failure.message,
            "stacktrace": failure.stacktrace,
            "locked_by": None,
            "lock_expires_at": None,
            "rev": int(job["rev"]) + 1,
        }
        incident = None
        if delay is None:
            incident = {
                "id": uuid.uuid4().hex,
                "instance_id": job["instance_id"],
                "activity_id": job["activity_id"],
                "job_id": job["id"],
                "kind": "failed-job",
                "message": failure.message,
                "stacktrace": failure.stacktrace,
                "created_at": now,
                "resolved_at": None,
            }
        return engine.store.record_job_failure(update, owner, incident, job["instance_id"], now)
