"""The operator's verbs on a running instance: cancel, suspend/activate, set and remove
variables, claim/unclaim/assign user tasks.

Each verb is one command in one transaction, optimistic on the instance row (its ``rev``): the
instance is read, changed in memory and written back only at the revision it was read at, so a
verb racing ``complete_task`` or a running job never both win; the loser re-runs on fresh state
(and then sees, say, that the instance has ended). The facade (``ProcessEngine``) delegates here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.events.end_event import EndEvent
from SpiffWorkflow.util.task import TaskState

from engine.bpmn import instance_state, mappings
from engine.bpmn.task_tree import task_by_id
from engine.core import ids
from engine.core.errors import (
    ConcurrencyConflict,
    EngineError,
    InvalidOperation,
    InvalidVariables,
    NotFound,
    TaskClaimed,
)
from engine.core.limits import shown
from engine.core.values import ENDED_STATES as ENDED
from engine.core.values import ProcessInstance, UserTask, VariableChange
from engine.core.variables import check_variables
from engine.runtime import rows
from engine.runtime.commands import Commands, check_not_suspended
from engine.runtime.listeners import fire_task_event
from engine.runtime.run import Run
from engine.storage.store import Store

#: Where the verbs go through: ``engine.runtime.commands.Commands`` (load -> run -> commit).
Host = Commands


def load_running(
    host: Host, instance_id: str, *, allow_suspended: bool = False
) -> tuple[Run, bool]:
    run, has_incident = host.load(instance_id)
    row = run.row or {}
    if row.get("state") in ENDED:
        raise NotFound(f"instance {instance_id} has ended ({row['state']})")
    if not allow_suspended:
        check_not_suspended(row)
    return run, has_incident


def command(
    host: Host,
    instance_id: str,
    action: Callable[[Run], None],
    *,
    allow_suspended: bool = False,
    after: Callable[[Run], None] | None = None,
) -> ProcessInstance:
    """Load, ``action``, ``after`` (once the write is filled in), commit: retried on conflicts."""

    def attempt() -> ProcessInstance:
        run, has_incident = load_running(host, instance_id, allow_suspended=allow_suspended)
        action(run)
        return host.commit(run, has_incident, adjust=after)

    return host.retry_on_conflict(attempt)


# -- cancel -------------------------------------------------------------------------------


def cancel(
    host: Host, instance_id: str, reason: str = "", user: str | None = None
) -> ProcessInstance:
    """End the instance as ``terminated``: its tokens are cancelled (history rows closed as
    cancelled, so a worker's later report on one of its external tasks is a duplicate), and
    every job, timer, external task, subscription and user task of it is deleted, all in one
    transaction. Call activities run inside their parent's instance, so they end with it. The
    last history entry (activity type ``processInstance``, outcome ``cancelled``) says who
    cancelled it and why in its ``error`` field."""
    if not isinstance(reason, str):
        raise EngineError(f"cancel: reason must be text, got {type(reason).__name__}")
    variables: dict[str, Any] = {}

    def action(run: Run) -> None:
        variables.update((run.row or {}).get("variables") or {})
        for task in run.wf.get_tasks(state=TaskState.NOT_FINISHED_MASK):
            if not task.has_state(TaskState.FINISHED_MASK):
                task.cancel()
        run.write.purge = True
        history = run.history
        history.seq += 1
        who = f" by {user}" if user else ""
        history.inserts.append(
            {
                "id": ids.new_id(),
                "instance_id": instance_id,
                "seq": history.seq,
                "activity_id": run.model.key,
                "activity_name": run.model.name or None,
                "activity_type": "processInstance",
                "started_at": run.now,
                "ended_at": run.now,
                "outcome": "cancelled",
                "error": f"cancelled{who}" + (f": {reason}" if reason else ""),
            }
        )

    def after(run: Run) -> None:
        inst = run.write.instance
        inst.update(
            state="terminated",
            ended_at=run.now,
            waiting_at=[],
            variables=copy.deepcopy(variables),
        )
        run.write.incidents_insert.clear()

    return command(host, instance_id, action, allow_suspended=True, after=after)


# -- suspend / activate -------------------------------------------------------------------


def set_suspended(host: Host, instance_id: str, suspended: bool) -> ProcessInstance:
    """Suspend (or activate) the instance: one optimistic update of its row. While suspended
    the acquisition queries skip its jobs, timers and external tasks (on every node), and
    commands on it raise ``InstanceSuspended``. Timers that fell due meanwhile fire once it is
    active again. Suspending a suspended instance (or activating an active one) changes
    nothing."""

    def attempt() -> ProcessInstance:
        row = host.store.instance(instance_id)
        if row is None:
            raise NotFound(f"no process instance with id '{instance_id}'")
        if row["state"] in ENDED:
            raise NotFound(f"instance {instance_id} has ended ({row['state']})")
        if bool(row.get("suspended")) != suspended:
            now = host.services.now()
            if not host.store.set_suspended(instance_id, suspended, int(row["rev"]), now):
                raise ConcurrencyConflict(f"instance {instance_id} changed meanwhile")
            row.update(suspended=suspended, rev=int(row["rev"]) + 1, updated_at=now)
        return rows.instance(row)

    inst = host.retry_on_conflict(attempt)
    if not suspended:
        host.wake(instance_id)  # timers that fell due meanwhile
    return inst


# -- variables ----------------------------------------------------------------------------


def _history_row(
    run: Run, pos: int, name: str, operation: str, value: Any, user: str | None
) -> dict[str, Any]:
    return {
        "id": ids.new_id(),
        "instance_id": run.instance_id,
        "pos": pos,
        "name": name,
        "operation": operation,
        "value": copy.deepcopy(value),
        "user_id": user,
        "created_at": run.now,
    }


def _token_tasks(run: Run) -> list[Any]:
    """Where the instance's variables live: its open tasks (and the tasks they came from), and
    the end events of branches that already ended."""
    tasks = instance_state.open_tasks(run.wf)
    ended = [
        t
        for t in run.wf.get_tasks(state=TaskState.COMPLETED, skip_subprocesses=True)
        if isinstance(t.task_spec, EndEvent)
    ]
    return [*tasks, *ended]


def set_variables(
    host: Host, instance_id: str, variables: Mapping[str, Any], user: str | None = None
) -> ProcessInstance:
    """Set process variables on a running instance (validated as ``start()`` validates them);
    each change is recorded in the variable history."""
    where = f"set_variables('{instance_id}')"
    values = check_variables(variables, where)
    if not values:
        raise InvalidVariables(f"{where}: no variables given")
    return _update(host, instance_id, values, [], user, where)


def remove_variables(
    host: Host, instance_id: str, names: Sequence[str], user: str | None = None
) -> ProcessInstance:
    """Remove process variables from a running instance; a name it does not have is refused."""
    where = f"remove_variables('{instance_id}')"
    wanted = _names(names, where)
    if not wanted:
        raise InvalidVariables(f"{where}: variable names must be non-empty strings: {shown(names)}")
    return _update(host, instance_id, {}, wanted, user, where)


def update_variables(
    host: Host,
    instance_id: str,
    variables: Mapping[str, Any] | None,
    deletions: Sequence[str] | None,
    user: str | None = None,
) -> ProcessInstance:
    """Set ``variables`` and remove ``deletions`` in one command (Camunda's "modifications and
    deletions"): the sets are applied first, then the removals, so a name in both ends up
    removed; either all of it commits or, on any refusal, nothing does."""
    where = f"update_variables('{instance_id}')"
    values = check_variables(variables, where)
    wanted = _names(deletions if deletions is not None else [], where)
    if not values and not wanted:
        raise InvalidVariables(f"{where}: no variables to set or remove")
    return _update(host, instance_id, values, wanted, user, where)


def _names(names: object, where: str) -> list[str]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise InvalidVariables(f"{where}: expected a list of variable names, got {shown(names)}")
    wanted = list(dict.fromkeys(names))
    if not all(isinstance(n, str) and n for n in wanted):
        raise InvalidVariables(f"{where}: variable names must be non-empty strings: {shown(names)}")
    return wanted


def _update(
    host: Host,
    instance_id: str,
    values: Mapping[str, Any],
    wanted: Sequence[str],
    user: str | None,
    where: str,
) -> ProcessInstance:
    def action(run: Run) -> None:
        present = (run.row or {}).get("variables") or {}
        missing = [n for n in wanted if n not in present and n not in values]
        if missing:
            raise InvalidVariables(
                f"{where}: the instance has no variable {', '.join(repr(n) for n in missing)}"
            )
        changes: list[tuple[str, str, Any]] = [(n, "set", v) for n, v in values.items()]
        if values:
            for task in instance_state.open_tasks(run.wf) or [run.wf.task_tree]:
                mappings.set_values(task, copy.deepcopy(dict(values)))
        if wanted:
            for task in _token_tasks(run):
                for holder in (task, task.parent):
                    if holder is not None:
                        for name in wanted:
                            holder.data.pop(name, None)
            changes.extend((n, "removed", None) for n in wanted)
        run.write.variable_history_insert = [
            _history_row(run, pos, name, operation, value, user)
            for pos, (name, operation, value) in enumerate(changes)
        ]

    def after(run: Run) -> None:
        left = [n for n in wanted if n in run.write.instance["variables"]]
        if left:
            raise InvalidVariables(
                f"{where}: {', '.join(repr(n) for n in left)} is also set inside a scope of "
                "the process (a subprocess input) and cannot be removed from outside"
            )

    return command(host, instance_id, action, after=after)


def variable_history(store: Store, instance_id: str) -> list[VariableChange]:
    if store.instance(instance_id) is None:
        raise NotFound(f"no process instance with id '{instance_id}'")
    return [
        VariableChange(
            instance_id=r["instance_id"],
            name=r["name"],
            operation=r["operation"],
            value=r["value"],
            user=r["user_id"],
            at=r["created_at"],
        )
        for r in store.variable_history(instance_id)
    ]


# -- user tasks ---------------------------------------------------------------------------


def user_task(row: Mapping[str, Any]) -> UserTask:
    return UserTask(
        id=row["id"],
        instance_id=row["instance_id"],
        activity_id=row["activity_id"],
        name=row["name"],
        assignee=row["assignee"],
        candidate_users=list(row["candidate_users"] or ()),
        candidate_groups=list(row["candidate_groups"] or ()),
        due_at=row["due_at"],
        follow_up_at=row["follow_up_at"],
        priority=int(row["priority"]),
        form_key=row["form_key"],
        created_at=row["created_at"],
        process_key=row["process_key"],
    )


def tasks(
    store: Store,
    instance_id: str | None = None,
    assignee: str | None = None,
    candidate_user: str | None = None,
    candidate_group: str | Sequence[str] | None = None,
    process_key: str | None = None,
    limit: int | None = None,
) -> list[UserTask]:
    groups: list[str] = []
    if candidate_group is not None:
        groups = [candidate_group] if isinstance(candidate_group, str) else list(candidate_group)
        if not all(isinstance(g, str) and g for g in groups):
            raise EngineError(
                "tasks: candidate_group must be a group name or a list of them, "
                f"got {shown(candidate_group)}"
            )
    rows = store.user_tasks(
        instance_id=instance_id,
        assignee=assignee,
        candidate_user=candidate_user,
        candidate_groups=groups,
        process_key=process_key,
        limit=limit,
    )
    return [user_task(r) for r in rows]


def delete_deployment(store: Store, deployment_id: str, cascade: bool) -> int:
    """Delete a deployment: refused while instances of it run unless ``cascade``, which deletes
    every instance of it (running or ended, with history); returns how many instances went."""
    if store.deployment(deployment_id) is None:
        raise NotFound(f"no deployment with id '{deployment_id}'")
    deleted, running = store.delete_deployment(deployment_id, cascade)
    if running and not cascade:
        shown = ", ".join(running[:5]) + (", ..." if len(running) > 5 else "")
        raise InvalidOperation(
            f"deployment {deployment_id} has {len(running)} running instance(s) "
            f"({shown}); cancel them or delete with cascade=True"
        )
    return deleted


def assign(host: Host, task_id: str, user: str | None, *, claim: bool) -> UserTask:
    """``claim`` (refused while another user holds the task), ``unclaim`` and ``set_assignee``:
    one write of the task row and the instance row, both at the revision they were read."""
    if (claim or user is not None) and (not isinstance(user, str) or not user.strip()):
        raise EngineError(
            f"task {task_id}: the user must be a non-empty user id, got {shown(user)}"
        )
    first = host.store.user_task(task_id)
    if first is None:
        raise NotFound(f"no open user task with id '{task_id}'")
    result: dict[str, Any] = {}

    def action(run: Run) -> None:
        row = host.store.user_task(task_id)  # fresh on every attempt
        if row is None:
            raise NotFound(f"no open user task with id '{task_id}' (completed meanwhile)")
        if claim and row["assignee"] is not None and row["assignee"] != user:
            raise TaskClaimed(
                f"task {task_id} ('{row['activity_id']}') is claimed by '{row['assignee']}'; "
                "unclaim it first"
            )
        rev = int(row["rev"])
        if user is not None and user != row["assignee"]:
            # The task's ``assignment`` listeners, inside this transaction (Camunda fires them
            # when the task gets an assignee; unclaiming fires none).
            task = task_by_id(run.wf, str(row["task_id"]))
            if task is not None:
                fire_task_event(run, task, "assignment")
        run.write.user_tasks_update.append(
            {"id": task_id, "expected_rev": rev, "assignee": user, "rev": rev + 1}
        )
        result.clear()
        result.update(row, assignee=user, rev=rev + 1)

    command(host, first["instance_id"], action)
    return user_task(result)
