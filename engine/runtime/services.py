"""What a ``Run`` needs from the engine around it (``Services``), and the job a run executes
(``JobContext``).

``ProcessEngine`` implements ``Services``; runs, activations and behaviours only ever see this
protocol, so nothing below the facade imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from engine.core.retry import RetryPolicy
from engine.deploy.deployment import ProcessModel
from engine.runtime.activation import Behavior, Handler
from engine.storage.outbox import OutboxRoute


class Services(Protocol):
    """What a run needs from the engine around it."""

    def now(self) -> datetime: ...
    def handler_for(self, name: str) -> Handler | None: ...
    def behavior_for(self, model: ProcessModel, task_spec: Any) -> Behavior: ...
    def retry_policy_for(self, model: ProcessModel, task_spec: Any) -> RetryPolicy: ...
    def outbox_route(self, topic: str) -> OutboxRoute | None: ...
    @property
    def script_engine(self) -> Any: ...


@dataclass
class JobContext:
    """The job a run executes, when it was started by the job executor."""

    row: dict[str, Any]
    lock_owner: str | None
