"""What finishing a run writes: the instance row, its history, its subscriptions, and the
reconciled ledger, gathered in the run's ``InstanceWrite`` ready for ``Store.apply``; and the
``ProcessInstance`` the caller gets back once it is committed.

``engine.runtime.commands.Commands.commit`` calls ``instance_write`` then ``snapshot``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState

from engine.bpmn import instance_state, specs
from engine.bpmn.task_tree import is_waiting_event, task_by_id
from engine.core.errors import InvalidVariables
from engine.core.values import ProcessInstance
from engine.core.variables import check_variables
from engine.runtime import rows, user_tasks
from engine.runtime.codec import InstanceCodec
from engine.runtime.ledger import Ledger
from engine.runtime.run_view import RunView
from engine.storage.write import InstanceWrite

#: Version of the stored instance format (the ``format`` column).
INSTANCE_FORMAT = 1


class Finishing(RunView, Protocol):
    """What finishing reads of a run (``engine.runtime.run.Run``)."""

    @property
    def wf(self) -> Any: ...
    @property
    def row(self) -> dict[str, Any] | None: ...
    @property
    def definition(self) -> Mapping[str, Any]: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def step_started(self) -> dict[UUID, datetime]: ...


def state(run: Finishing, had_open_incident: bool) -> str:
    """``had_open_incident``: the instance had one before this run; incidents this run
    opens count too."""
    if run.wf.completed:
        return "completed"
    return "incident" if had_open_incident or run.write.incidents_insert else "active"


def close_history(run: Finishing, open_tasks: list[Any]) -> None:
    """Close open rows of tasks that finished or were cancelled, open rows for new
    wait states."""
    history, now = run.history, run.now
    for task_id in list(history.open):
        task = task_by_id(run.wf, task_id)
        if task is None:
            history.close(task_id, now, "cancelled")
        elif task.state == TaskState.COMPLETED:
            history.close(task_id, now, "completed")
        elif task.state == TaskState.CANCELLED:
            history.close(task_id, now, "cancelled")
        elif task.state == TaskState.ERROR:
            history.close(task_id, now, "failed")
    for task in open_tasks:
        if str(task.id) in history.open:
            continue
        spec = task.task_spec
        # Boundary events and the start events of event subprocesses are not where a token
        # waits: they enter history when they fire, the event subprocess when triggered.
        waits = (
            (task.state == TaskState.READY and spec.manual)
            or (
                task.state == TaskState.WAITING
                and is_waiting_event(task)
                and not isinstance(spec, BoundaryEvent | StartEvent)
            )
            or (
                task.state == TaskState.STARTED
                and (not specs.is_event_subprocess(task) or specs.TRIGGERED in task.internal_data)
            )
        )
        if waits:
            history.add(task, run.step_started.get(task.id, now), None, None)


def instance_write(
    run: Finishing, codec: InstanceCodec, has_open_incident: bool = False
) -> InstanceWrite:
    """Fill in the instance row and history; the run's write is ready to apply."""
    open_tasks = instance_state.open_tasks(run.wf)
    ledger, write, now = run.ledger, run.write, run.now
    ledger.add_signal_jobs()
    ledger.stop_capped_loops(open_tasks)
    ledger.reconcile_jobs()
    ledger.reconcile_external()
    close_history(run, open_tasks)
    current = state(run, has_open_incident)
    variables = instance_state.variables(run.wf, open_tasks)
    try:
        check_variables(variables, f"instance {run.instance_id}")
    except InvalidVariables as exc:
        raise InvalidVariables(f"process data cannot be stored: {exc}") from exc
    previous_subs = int(((run.row or {}).get("open_activities") or {}).get("subs", 0))
    subs = instance_state.subscriptions(
        run.wf, open_tasks, run.instance_id, run.business_key, variables
    )
    instance = {
        "id": run.instance_id,
        "definition_id": run.definition["id"],
        "process_key": run.model.key,
        "version": run.definition["version"],
        "business_key": run.business_key,
        "state": current,
        "waiting_at": instance_state.waiting_at(open_tasks),
        "variables": variables,
        "open_activities": {
            "open": run.history.open,
            "seq": run.history.seq,
            "subs": len(subs),
            "jobs": ledger.job_keys,
            "external": ledger.external_keys,
            user_tasks.KEY: user_tasks.reconcile(run, open_tasks),
        },
        "data": codec.dump(run.wf),
        "format": INSTANCE_FORMAT,
        "updated_at": now,
        "ended_at": now if current == "completed" else None,
    }
    if run.row is None:
        instance.update(rev=1, created_at=now)
        write.expected_rev = None
    else:
        instance["rev"] = int(run.row["rev"]) + 1
        write.expected_rev = int(run.row["rev"])
        write.stored_row = run.row
    write.instance = instance
    write.history_insert = run.history.inserts
    write.history_update = run.history.updates
    if subs or previous_subs:
        write.subscriptions = subs
    return write


def snapshot(run: Finishing) -> ProcessInstance:
    """The instance as the finished write left it."""
    row = run.write.instance
    created_at = row.get("created_at") or (run.row or {}).get("created_at")
    return rows.instance({**row, "created_at": created_at})
