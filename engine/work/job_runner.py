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
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState

from engine.bpmn import loops, signals, timer_events
from engine.core import ids, observe
from engine.core.durations import DEFAULT_LOCK_DURATION
from engine.core.errors import ConcurrencyConflict, EngineError, NotFound
from engine.runtime import rows
from engine.runtime.activation import PARKED_JOB, PARKED_KEY, Failure
from engine.runtime.commands import has_ended
from engine.runtime.run import Run
from engine.runtime.services import JobContext
from engine.storage.store_jobs import PRELOADED
from engine.storage.write import InstanceWrite
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
        with self._step(job):
            observer.job_started(job, self._lateness(job))
            outcome = self._execute(job, owner)
            observer.job_finished(job, outcome)
        return outcome != "released"

    def _execute(self, job: Mapping[str, Any], owner: str) -> str:
        """Run one locked job: "executed", "failed" (a counted failure), "dropped" (its
        instance is gone) or "released" (given back, or its lock was lost)."""
        try:
            try:
                outcome, write = self._run(dict(job), owner)
                self._commit_one(write)
            except ConcurrencyConflict:
                if self._preloaded(job) is None:
                    raise
                # The copy read at acquisition went stale (a user call moved the instance
                # on): run once more on fresh state before giving the job back.
                outcome, write = self._run({**job, PRELOADED: None}, owner)
                self._commit_one(write)
            return outcome
        except Exception as exc:  # noqa: BLE001 - settled below, as its kind says
            return self._settle(job, owner, exc, traceback.format_exc())

    def execute_batch(
        self,
        jobs: Sequence[Mapping[str, Any]],
        owner: str,
        stopping: Callable[[], bool] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> list[bool]:
        """Run locked jobs of different instances and commit their results together (group
        commit, ``Commands.commit_group``): each job's write isolated from the others', so a
        job whose write conflicts or is refused is settled alone, as ``execute`` settles it
        (a stale copy re-run once on fresh state, then given back; a refused write counted as
        a failed attempt), and the others' writes commit once. A job that fails before its
        write, and jobs that are not one write (signal broadcasts), run as ``execute`` runs
        them. Once ``stopping()`` is true, jobs not started yet are given back (False) and
        what ran is committed; ``on_start()`` is called as each job starts or is given back.
        One outcome per job, in order, as ``execute`` returns it."""
        observer = self.engine.observer
        outcomes: list[str | None] = [None] * len(jobs)
        prepared: list[tuple[int, str, InstanceWrite]] = []
        started: set[int] = set()
        seen: set[str] = set()
        for i, job in enumerate(jobs):
            instance_id = job["instance_id"]
            if job["kind"] == signals.KIND or (instance_id and instance_id in seen):
                continue  # run alone below, after the group (a later state of its instance)
            if on_start is not None:
                on_start()
            if stopping is not None and stopping():
                self.engine.store.release_job(job["id"], owner)  # never started
                outcomes[i] = "released"
                continue
            started.add(i)
            with self._step(job):
                observer.job_started(job, self._lateness(job))
                try:
                    outcome, write = self._run(dict(job), owner)
                except Exception as exc:  # noqa: BLE001 - settled as execute settles it
                    if isinstance(exc, ConcurrencyConflict) and self._preloaded(job) is not None:
                        outcomes[i] = self._execute({**job, PRELOADED: None}, owner)
                    else:
                        outcomes[i] = self._settle(job, owner, exc, traceback.format_exc())
                    continue
            if write is None:
                outcomes[i] = outcome
                continue
            if instance_id:
                seen.add(instance_id)
            prepared.append((i, outcome, write))
        try:
            results = self.commands.commit_group([write for _, _, write in prepared])
        except Exception as exc:  # noqa: BLE001 - the group's transaction itself failed
            stacktrace = traceback.format_exc()
            results = [exc] * len(prepared)
            stacktraces = {i: stacktrace for i, _, _ in prepared}
        else:
            stacktraces = {}
        for (i, outcome, _write), result in zip(prepared, results, strict=True):
            job = jobs[i]
            if result is None:
                outcomes[i] = outcome
            elif isinstance(result, ConcurrencyConflict) and self._preloaded(job) is not None:
                # Its copy went stale: once more on fresh state, on its own, as execute does.
                outcomes[i] = self._execute({**job, PRELOADED: None}, owner)
            else:
                trace = stacktraces.get(i) or "".join(traceback.format_exception(result))
                outcomes[i] = self._settle(job, owner, result, trace)
        for i in sorted(started):
            observer.job_finished(jobs[i], outcomes[i] or "released")
        done: list[bool] = []
        for i, job in enumerate(jobs):
            if outcomes[i] is None and on_start is not None:
                on_start()
            if outcomes[i] is None and stopping is not None and stopping():
                self.engine.store.release_job(job["id"], owner)
                done.append(False)
            elif outcomes[i] is None:
                fresh = job["instance_id"] in seen  # its instance moved on in this group
                done.append(self.execute({**job, PRELOADED: None} if fresh else job, owner))
            else:
                done.append(outcomes[i] != "released")
        return done

    @staticmethod
    def _step(job: Mapping[str, Any]) -> observe.step:
        return observe.step(
            "spillway.job",
            job_id=job["id"],
            job_kind=job["kind"],
            instance_id=job["instance_id"],
            activity_id=job["activity_id"],
            attempt=rows.job_attempts(job) + 1,  # as the handler's TaskContext.attempt
        )

    def _lateness(self, job: Mapping[str, Any]) -> float:
        """Pickup latency on the engine clock: from the job falling due to its start."""
        return max(float((self.engine.now() - job["due_at"]).total_seconds()), 0.0)

    def _settle(
        self, job: Mapping[str, Any], owner: str, exc: BaseException, stacktrace: str
    ) -> str:
        """A job whose run or write raised: "released" (a lost race: given back), "dropped"
        (its instance or definition is gone), or "failed" (its attempt counted)."""
        if isinstance(exc, ConcurrencyConflict):
            log.info(
                "job %s: instance %s changed meanwhile; released", job["id"], job["instance_id"]
            )
            self.engine.store.release_job(job["id"], owner)
            return "released"
        if isinstance(exc, NotFound):
            log.warning("job %s: %s; the job is dropped", job["id"], exc)
            self.engine.store.delete_job(job["id"], owner)
            return "dropped"
        failure = Failure(exc, stacktrace)
        log.warning(
            "job %s (instance %s, activity '%s') failed: %s",
            job["id"],
            job["instance_id"],
            job["activity_id"],
            failure.message,
        )
        counted = self._count_failure(dict(job), owner, failure)
        return "failed" if counted else "released"

    def _commit_one(self, write: InstanceWrite | None) -> None:
        if write is not None:
            self.commands.commit_write(write)

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

    def _run(self, job: dict[str, Any], owner: str) -> tuple[str, InstanceWrite | None]:
        """Run the job in memory: its outcome once committed, and its instance's write,
        prepared and not yet applied (None when the job was settled on its own: a signal
        broadcast, an ended instance)."""
        engine, commands = self.engine, self.commands
        if job["kind"] == "timer-start":
            return "executed", self._start_by_timer(job, owner)
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
            return "executed", None
        run, has_incident = commands.load(
            job["instance_id"], JobContext(job, owner), row=self._preloaded(job)
        )
        if has_ended(run):
            if not engine.store.delete_job(job["id"], owner):
                raise ConcurrencyConflict(f"job {job['id']}: lock lost")
            return "dropped", None
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
        write = commands.prepare(run, has_incident)
        # A handler that failed inside the job books its next retry (or incident) on the job.
        failed = any(u["id"] == job["id"] and u.get("last_error") for u in run.write.jobs_update)
        return ("failed" if failed else "executed"), write

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

    def _start_by_timer(self, job: dict[str, Any], owner: str) -> InstanceWrite:
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
        return commands.prepare(run)

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
                "id": ids.new_id(),
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
