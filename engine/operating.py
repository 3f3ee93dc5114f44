"""The operator's half of the facade: user tasks and the verbs on running instances.

``ProcessEngine`` inherits these thin methods; each delegates to ``engine.runtime.operations``,
``modification`` or ``migration`` (the logic), or to history cleanup (``engine.work``). Kept
apart from ``engine.engine`` only for size; see docs/operating.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.core import limits
from engine.core.clock import Clock
from engine.core.errors import InvalidArgument
from engine.core.observe import command
from engine.core.values import ProcessInstance, UserTask, VariableChange
from engine.runtime import migration, modification, operations
from engine.runtime.commands import Commands
from engine.storage.store import Store
from engine.work.history_cleanup import DEFAULT_CLEANUP_INTERVAL, HistoryCleaner, HistoryCleanup


class OperatingVerbs:
    """User tasks, cancel, suspend/activate, variables, modify, migrate, deployments, history
    cleanup (CONTRACT.md, "Operating running instances")."""

    commands: Commands
    store: Store
    clock: Clock
    #: What ``cleanup_history`` runs (``.batch``: instances deleted per transaction).
    history_cleanup: HistoryCleanup

    def tasks(
        self,
        instance_id: str | None = None,
        assignee: str | None = None,
        candidate_user: str | None = None,
        candidate_group: str | Sequence[str] | None = None,
        process_key: str | None = None,
        limit: int | None = None,
    ) -> list[UserTask]:
        """Open user tasks, oldest first. ``candidate_user`` / ``candidate_group`` (a group or a
        list: the groups the caller says the user is in) select unassigned tasks to claim;
        ``limit``: at most that many (None: all)."""
        if instance_id is not None:
            limits.check_id(instance_id, "instance_id")
        limits.check_name(assignee, "assignee", optional=True)
        limits.check_name(candidate_user, "candidate_user", optional=True)
        limits.check_name(process_key, "process_key", optional=True)
        if candidate_group is not None:
            groups = [candidate_group] if isinstance(candidate_group, str) else candidate_group
            if not isinstance(groups, list | tuple):
                raise InvalidArgument(
                    "candidate_group must be a group or a list of groups, "
                    f"got {limits.shown(candidate_group)}",
                    argument="candidate_group",
                )
            for group in groups:
                limits.check_name(group, "candidate_group")
        return operations.tasks(
            self.store,
            instance_id,
            assignee,
            candidate_user,
            candidate_group,
            process_key,
            limit=limits.check_limit(limit),
        )

    @command("claim", task_id="user_task_id")
    def claim(self, task_id: str, user: str) -> UserTask:
        """Make ``user`` the assignee; ``TaskClaimed`` if another user holds the task."""
        limits.check_id(task_id, "task_id")
        limits.check_name(user, "user")
        return operations.assign(self.commands, task_id, user, claim=True)

    @command("unclaim", task_id="user_task_id")
    def unclaim(self, task_id: str) -> UserTask:
        limits.check_id(task_id, "task_id")
        return operations.assign(self.commands, task_id, None, claim=False)

    @command("set_assignee", task_id="user_task_id")
    def set_assignee(self, task_id: str, user: str | None) -> UserTask:
        """Assign the task to ``user`` whoever holds it (None: unassigned)."""
        limits.check_id(task_id, "task_id")
        limits.check_name(user, "user", optional=True)
        return operations.assign(self.commands, task_id, user, claim=False)

    @command("cancel")
    def cancel(
        self, instance_id: str, reason: str = "", *, user: str | None = None
    ) -> ProcessInstance:
        """End the instance as ``terminated`` with all its work, recording who and why."""
        limits.check_id(instance_id, "instance_id")
        limits.check_name(user, "user", optional=True)
        if isinstance(reason, str):
            reason = limits.check_text(reason, "reason")
        return operations.cancel(self.commands, instance_id, reason, user)

    @command("suspend")
    def suspend(self, instance_id: str) -> ProcessInstance:
        """No job, timer or external task of it runs until ``activate``."""
        limits.check_id(instance_id, "instance_id")
        return operations.set_suspended(self.commands, instance_id, True)

    @command("activate")
    def activate(self, instance_id: str) -> ProcessInstance:
        limits.check_id(instance_id, "instance_id")
        return operations.set_suspended(self.commands, instance_id, False)

    @command("set_variables")
    def set_variables(
        self, instance_id: str, variables: Mapping[str, Any], *, user: str | None = None
    ) -> ProcessInstance:
        limits.check_id(instance_id, "instance_id")
        limits.check_name(user, "user", optional=True)
        return operations.set_variables(self.commands, instance_id, variables, user)

    @command("remove_variables")
    def remove_variables(
        self, instance_id: str, names: Sequence[str], *, user: str | None = None
    ) -> ProcessInstance:
        limits.check_id(instance_id, "instance_id")
        limits.check_name(user, "user", optional=True)
        return operations.remove_variables(self.commands, instance_id, names, user)

    @command("update_variables")
    def update_variables(
        self,
        instance_id: str,
        variables: Mapping[str, Any] | None = None,
        deletions: Sequence[str] | None = None,
        *,
        user: str | None = None,
    ) -> ProcessInstance:
        """Set ``variables`` and remove ``deletions`` in one transaction (sets first, then
        removals); a refusal of any part (an unknown name, a bad value) changes nothing."""
        limits.check_id(instance_id, "instance_id")
        limits.check_name(user, "user", optional=True)
        return operations.update_variables(self.commands, instance_id, variables, deletions, user)

    def variable_history(self, instance_id: str) -> list[VariableChange]:
        """Changes made by set_variables / remove_variables, oldest first."""
        limits.check_id(instance_id, "instance_id")
        return operations.variable_history(self.store, instance_id)

    @command("modify")
    def modify(
        self,
        instance_id: str,
        start_before: Sequence[str] | None = None,
        cancel: Sequence[str] | None = None,
    ) -> ProcessInstance:
        """Move tokens: cancel those at ``cancel`` activities, start new ones before
        ``start_before`` activities, in one transaction."""
        limits.check_id(instance_id, "instance_id")
        return modification.modify(self.commands, instance_id, start_before, cancel)

    @command("migrate")
    def migrate(
        self,
        instance_ids: Sequence[str],
        to_version: int,
        mapping: Mapping[str, str] | None = None,
    ) -> list[ProcessInstance]:
        """Move running instances to another version of their process (all or none)."""
        return migration.migrate(self.commands, instance_ids, to_version, mapping)

    @command("delete_deployment")
    def delete_deployment(self, deployment_id: str, cascade: bool = False) -> int:
        """Refused while instances of it run unless ``cascade``; how many instances went."""
        limits.check_id(deployment_id, "deployment_id")
        return operations.delete_deployment(self.store, deployment_id, cascade)

    def cleanup_history(self, now: datetime | None = None) -> int:
        """Remove ended instances past their history time to live, with their history, in
        batches; how many instances went."""
        return self.history_cleanup.run(now or self.clock.now())

    def history_cleaner(self, interval: float = DEFAULT_CLEANUP_INTERVAL) -> HistoryCleaner:
        """A thread running ``cleanup_history`` every ``interval`` seconds: ``start()``,
        ``stop()`` (``spillway worker`` runs one; a server schedules it the same way)."""
        return HistoryCleaner.of(self.history_cleanup, self.clock, interval)
