"""Applying worker reports that change a process: completions, BPMN errors, incidents.

Reports on one instance arriving together from several threads are combined: the first thread
to report on an instance becomes its *leader* and applies every report queued meanwhile in one
instance write (``Store.apply`` with ``InstanceWrite.external_held``: each task must still be
locked by its reporting worker). 50 parallel tasks completed at once thus cost a few writes,
not 50 optimistic-locking races. A leader never waits on another instance's queue, so leaders
cannot deadlock. Leaders in other processes are serialised by the database: the leader reads the
instance under a row lock (``Store.locked_instance``: ``SELECT ... FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite) and commits in the same transaction, so contention costs waiting,
not a ``ConcurrencyConflict``; what other writers race for is re-run through the command seam
(``Commands.retry_on_conflict``).

Outcomes are published only once the write committed: True (applied), False (a duplicate:
the task was already completed or cancelled; logged at WARNING and counted), or an exception
(``LockLost``, ``NotFound``, or whatever the write raised).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.util.task import TaskState

from engine.bpmn import mappings
from engine.core import ids
from engine.core.errors import BpmnError, ConcurrencyConflict, LockLost, NotFound
from engine.runtime.activation import PARKED_EXTERNAL, PARKED_KEY, Activation
from engine.runtime.commands import check_not_suspended, has_ended
from engine.runtime.run import Run
from engine.work.host import ExternalHost

log = logging.getLogger("spillway.external")

INCIDENT_KIND = "failed-external-task"


@dataclass(eq=False)
class Report:
    """One worker report that changes its instance, waiting to be applied by a leader."""

    kind: str  # "complete" | "bpmn_error" | "incident"
    task_id: str
    worker_id: str
    instance_id: str
    variables: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    message: str = ""
    details: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    outcome: bool = False
    error: BaseException | None = None

    def resolve(self, outcome: bool) -> None:
        self.outcome = outcome
        self.done.set()

    def reject(self, error: BaseException) -> None:
        self.error = error
        self.done.set()

    def result(self) -> bool:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.outcome


class ReportCombiner:
    """Applies reports for one engine, combined per instance."""

    def __init__(self, engine: ExternalHost) -> None:
        self.engine = engine
        self.commands = engine.commands
        self.store = engine.store
        # instance id -> reports queued for the thread leading it (present while one leads)
        self._queues: dict[str, list[Report]] = {}
        self._queues_lock = threading.Lock()

    def submit(self, reports: list[Report]) -> None:
        """Queue reports on their instances; lead (apply) every queue this call opened."""
        lead = []
        by_instance: dict[str, list[Report]] = {}
        for report in reports:
            if not report.instance_id:
                self.resolve_gone(report)
                continue
            by_instance.setdefault(report.instance_id, []).append(report)
        with self._queues_lock:
            for iid, items in by_instance.items():
                queue = self._queues.get(iid)
                if queue is None:
                    self._queues[iid] = items
                    lead.append(iid)
                else:
                    queue.extend(items)
        for iid in lead:
            self._lead(iid)

    def _lead(self, instance_id: str) -> None:
        """Apply what is queued for the instance, batch after batch, until nothing is left.
        A leader never waits on another queue, so leaders cannot deadlock."""
        while True:
            with self._queues_lock:
                batch = self._queues[instance_id]
                if not batch:
                    del self._queues[instance_id]
                    return
                self._queues[instance_id] = []
            self._apply(instance_id, batch)

    def _apply(self, instance_id: str, batch: list[Report]) -> None:
        try:
            self.commands.retry_on_conflict(lambda: self._attempt(instance_id, batch))
        except Exception as exc:  # noqa: BLE001 - handed to the reporting callers
            if len(batch) > 1:
                # One report's outcome (e.g. variables a later gateway cannot use) must not
                # fail the others: apply each on its own.
                for report in batch:
                    if not report.done.is_set():
                        self._apply(instance_id, [report])
                return
            for report in batch:
                if not report.done.is_set():
                    report.reject(exc)
        except BaseException as exc:
            for report in batch:
                report.reject(exc)
            raise

    def _attempt(self, instance_id: str, batch: list[Report]) -> None:
        """One try at the batch on fresh state: classify against the rows, apply the rest in
        one instance write. Outcomes are only published once the write committed."""
        outcomes: list[tuple[Report, Outcome]] = []
        # Reports on one instance from every thread and node queue on its row lock here, so
        # they wait for each other instead of racing on its revision (issue 19).
        with self.store.locked_instance(instance_id) as instance_row:
            rows = self.store.external_tasks_by_id([r.task_id for r in batch])
            accepted: list[tuple[Report, dict[str, Any]]] = []
            seen: set[str] = set()
            for report in batch:
                row = rows.get(report.task_id)
                if row is None or row["instance_id"] != instance_id:
                    gone = self._gone_outcome(report.task_id, WHAT[report.kind])
                    outcomes.append((report, gone))
                elif report.task_id in seen:
                    outcomes.append((report, Duplicate(duplicate_note(row, report, "completed"))))
                elif row["lock_owner"] != report.worker_id or row["state"] != "open":
                    outcomes.append((report, lock_lost(row, report.worker_id)))
                else:
                    seen.add(report.task_id)
                    accepted.append((report, row))
            if accepted:
                outcomes.extend(self._run(instance_id, accepted, instance_row))
        for report, outcome in outcomes:
            self.publish(report, outcome)

    def publish(self, report: Report, outcome: Outcome) -> None:
        if isinstance(outcome, Duplicate):
            self.engine.stats.add("external_duplicates")
            self.engine.observer.external_duplicate()
            log.warning("%s", outcome.note)
            report.resolve(False)
        elif isinstance(outcome, BaseException):
            report.reject(outcome)
        else:
            report.resolve(outcome)

    def _run(
        self,
        instance_id: str,
        accepted: list[tuple[Report, dict[str, Any]]],
        instance_row: dict[str, Any] | None,
    ) -> list[tuple[Report, Outcome]]:
        engine = self.engine
        run, has_incident = self.commands.load(instance_id, row=instance_row)
        if has_ended(run):
            # Rows of an ended instance are deleted with its last write; a stale read.
            raise ConcurrencyConflict(f"instance {instance_id} ended meanwhile")
        check_not_suspended(run.row)
        outcomes: list[tuple[Report, Outcome]] = []
        applied: list[str] = []  # the topics of the completions applied
        deferred = _DeferredUpdates()
        for report, row in accepted:
            task = run.task(row["task_id"])
            if (
                task is None
                or task.state != TaskState.STARTED
                or task.internal_data.get(PARKED_KEY) != PARKED_EXTERNAL
            ):
                # Cancelled by an earlier report of this batch (an interrupting boundary), or a
                # row the instance no longer tracks: either way the row goes.
                outcomes.append((report, Duplicate(duplicate_note(row, report, "cancelled"))))
                if row["id"] not in run.write.external_delete:
                    run.write.external_delete.append(row["id"])
                continue
            run.write.external_held.append((report.task_id, report.worker_id))
            act = Activation(run, task, in_job=False, attempt=int(row["attempts"]) + 1)
            kind, code, message = report.kind, report.code, report.message
            # camunda:errorEventDefinition: a completion may throw a BPMN error instead.
            if kind == "complete" and (
                thrown := mappings.thrown_error(task, act.config, report.variables)
            ):
                kind, (code, message) = "bpmn_error", thrown
            if kind == "complete":
                deferred.defer(task.workflow)
                act.complete(report.variables)
                applied.append(row["topic"])
            elif kind == "bpmn_error":
                deferred.flush()
                error = BpmnError(code, message, report.variables)
                failure = act.throw_bpmn_error(error)
                if failure is not None:
                    self._open_incident(run, row, failure.message, failure.stacktrace)
                run.advance()
            else:
                self._open_incident(run, row, report.message, report.details)
            outcomes.append((report, True))
        deferred.flush()
        if run.write.external_held or run.write.external_delete:
            run.advance()
            self.commands.commit(run, has_incident)
            engine.stats.add("external_batches")
            engine.stats.add("external_completed", len(applied))
            if applied:
                self.store.on_commit(lambda: self._count_completed(applied))
        return outcomes

    def _count_completed(self, topics: list[str]) -> None:
        for topic, n in collections.Counter(topics).items():
            self.engine.observer.external_completed(topic, n)

    def _open_incident(
        self, run: Run, row: Mapping[str, Any], message: str, details: str | None
    ) -> None:
        now = run.now
        run.write.external_update.append(
            {
                "id": row["id"],
                "state": "failed",
                "retries": 0,
                "attempts": int(row["attempts"]) + 1,
                "error_message": message,
                "error_details": details,
                "lock_owner": None,
                "lock_expires_at": None,
                "rev": int(row["rev"]) + 1,
            }
        )
        run.write.incidents_insert.append(
            {
                "id": ids.new_id(),
                "instance_id": run.instance_id,
                "activity_id": row["activity_id"],
                "job_id": row["id"],  # Camunda's incident "configuration": what to retry
                "kind": INCIDENT_KIND,
                "message": message,
                "stacktrace": details,
                "created_at": now,
                "resolved_at": None,
            }
        )
        log.warning(
            "external task %s (instance %s, activity '%s') failed: %s; incident opened",
            row["id"],
            run.instance_id,
            row["activity_id"],
            message,
            extra={
                "activity_id": row["activity_id"],
                "external_task_id": row["id"],
                "topic": row["topic"],
            },
        )

    # -- gone tasks and duplicates -------------------------------------------------------

    def _gone_outcome(self, task_id: str, what: str) -> Outcome:
        """A report on a task whose row is gone: a duplicate when its activity ended (the task
        id is its history row's id), else NotFound."""
        history = self.store.history_row(task_id)
        if history is None or history["ended_at"] is None:
            return NotFound(f"no external task with id '{task_id}'")
        return Duplicate(
            f"external task {task_id} (instance {history['instance_id']}, activity "
            f"'{history['activity_id']}') was already {history['outcome'] or 'ended'}; "
            f"{what} ignored"
        )

    def gone(self, task_id: str, what: str) -> bool:
        report = Report("complete", task_id, "-", "")
        self.publish(report, self._gone_outcome(task_id, what))
        return report.result()

    def resolve_gone(self, report: Report) -> None:
        self.publish(report, self._gone_outcome(report.task_id, WHAT[report.kind]))


class _DeferredUpdates:
    """SpiffWorkflow re-checks every waiting task of the tree after each completed task: 50
    parallel tasks completed in one write would walk the tree 50 times (SpiffWorkflow #424).
    While a batch of completions is applied, that check is deferred to one at the end, which
    sees the same completed tasks (joins and multi-instance parents fire once either way)."""

    def __init__(self) -> None:
        self._workflows: list[Any] = []

    def defer(self, workflow: Any) -> None:
        if workflow not in self._workflows:
            workflow.update_waiting_tasks = _no_update
            self._workflows.append(workflow)

    def flush(self) -> None:
        workflows, self._workflows = self._workflows, []
        for workflow in workflows:
            del workflow.update_waiting_tasks  # the class's method again
            workflow.update_waiting_tasks()


def _no_update() -> None:
    return None


WHAT = {"complete": "completion", "bpmn_error": "BPMN error", "incident": "failure report"}


@dataclass(frozen=True)
class Duplicate:
    """A report on a task already completed or cancelled: False, logged once it is final."""

    note: str


Outcome = bool | BaseException | Duplicate


def duplicate_note(row: Mapping[str, Any], report: Report, how: str) -> str:
    return (
        f"external task {row['id']} (instance {row['instance_id']}, activity "
        f"'{row['activity_id']}') was already {how}; {WHAT[report.kind]} ignored"
    )


def check_lock(row: Mapping[str, Any], worker_id: str) -> None:
    if row["lock_owner"] != worker_id or row["state"] != "open":
        raise lock_lost(row, worker_id)


def lock_lost(row: Mapping[str, Any], worker_id: str) -> LockLost:
    if row["state"] != "open":
        why = "it failed and waits for an operator's retry (incident open)"
    elif row["lock_owner"] is None:
        why = "it is not locked (its lock was released or never taken)"
    else:
        why = f"it is locked by '{row['lock_owner']}'"
    return LockLost(f"external task {row['id']} cannot be reported on by '{worker_id}': {why}")
