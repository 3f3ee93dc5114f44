"""What the work layer needs from the engine that hosts it: narrow protocols, so the job runner,
the executor, external tasks, their reports and worker pools never import the facade
(``engine.engine.ProcessEngine`` implements them all) and never reach into it.

State changes go through the command seam (``engine.runtime.commands.Commands``), which every
host hands out as ``commands``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from engine.core.observe import Observer
from engine.core.retry import RetryPolicy
from engine.core.stats import Counters
from engine.core.values import ExternalTask, TaskContext
from engine.deploy.deployment import ProcessModel
from engine.runtime.activation import Handler
from engine.runtime.commands import Commands
from engine.storage.store import Store


class Clocked(Protocol):
    """The engine's store and clock: what a loop that only waits for work needs."""

    @property
    def store(self) -> Store: ...
    def now(self) -> datetime: ...


class JobHost(Clocked, Protocol):
    """What the job runner and the job executor need."""

    @property
    def commands(self) -> Commands: ...
    @property
    def observer(self) -> Observer:
        """Told of acquisitions, job runs and external tasks (engine.core.observe)."""
        ...

    @property
    def retry_policy(self) -> RetryPolicy:
        """The engine-wide default retry policy."""
        ...

    def registered_handlers(self) -> frozenset[str]:
        """Handler names registered: only jobs needing one of these (or none) are acquired."""
        ...


class ExternalHost(JobHost, Protocol):
    """What the external-task service and its report combiner need."""

    @property
    def stats(self) -> Counters: ...
    def retry_policy_for(self, model: ProcessModel, task_spec: Any) -> RetryPolicy: ...


class ExternalTaskApi(Protocol):
    """The part of ``ExternalTaskService`` a worker pool uses."""

    def fetch_and_lock(
        self,
        worker_id: str,
        topics: Sequence[str | tuple[Any, ...] | Mapping[str, Any]],
        max_tasks: int = ...,
        lock_duration: float | timedelta = ...,
        variables: Sequence[str] | None = ...,
    ) -> list[ExternalTask]: ...
    def context(self, task: ExternalTask) -> TaskContext: ...
    def retry_policy(self, task: ExternalTask) -> RetryPolicy: ...
    def extend_lock(
        self, task_id: str, worker_id: str, lock_duration: float | timedelta = ...
    ) -> None: ...
    def unlock(self, task_id: str) -> None: ...
    def handle_failure(
        self,
        task_id: str,
        worker_id: str,
        error_message: str,
        error_details: str | None = ...,
        retries: int | None = ...,
        retry_timeout: float | timedelta | None = ...,
    ) -> bool: ...
    def report_all(
        self,
        reports: Iterable[tuple[str, str | ExternalTask, str, Mapping[str, Any]]],
        *,
        checked: bool = ...,
    ) -> list[Any]: ...


class PoolHost(Clocked, Protocol):
    """What a worker pool needs."""

    @property
    def commands(self) -> Commands: ...
    @property
    def external_tasks(self) -> ExternalTaskApi: ...
    def handler_for(self, name: str) -> Handler | None: ...


__all__ = ["Clocked", "ExternalHost", "ExternalTaskApi", "JobHost", "PoolHost"]
