"""The engine's exception hierarchy: one root, a default message per subclass.

Driver and library errors are wrapped at the boundary (``raise X(...) from exc``) so the
original stays available as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""

    default_message = "engine error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class DeploymentError(EngineError):
    """A BPMN source could not be deployed; nothing of it was stored."""

    default_message = "deployment failed"

    def __init__(self, message: str | None = None, *, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if message is None and self.problems:
            message = "; ".join(self.problems)
        super().__init__(message)


class NotFound(EngineError):
    """An instance, task, job, process key or other id does not exist."""

    default_message = "not found"


class InvalidVariables(EngineError):
    """Variables that cannot be stored (not JSON-compatible, bad names)."""

    default_message = "invalid variables"


class HandlerError(EngineError):
    """A handler's technical failure reached the caller (async-on-error switched off)."""

    default_message = "handler failed"

    def __init__(self, message: str | None = None, *, activity_id: str | None = None) -> None:
        self.activity_id = activity_id
        super().__init__(message)


class LockLost(EngineError):
    """An external task is locked by another worker, or its lock has expired."""

    default_message = "lock lost"


class ConcurrencyConflict(EngineError):
    """Another transaction changed the same instance and internal retries gave up."""

    default_message = "concurrent modification"


class CorrelationError(EngineError):
    """A message matched no waiting instance and no message start event, or several instances."""

    default_message = "message correlation failed"


class InstanceSuspended(EngineError):
    """The instance is suspended (``ProcessEngine.suspend``): activate it first."""

    default_message = "process instance is suspended"


class TaskClaimed(EngineError):
    """``claim`` of a user task another user has claimed already."""

    default_message = "task is claimed by another user"


class InvalidOperation(EngineError):
    """A modification, migration or deletion the engine refuses; ``problems`` lists why."""

    default_message = "operation refused"

    def __init__(self, message: str | None = None, *, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if message is None and self.problems:
            message = "; ".join(self.problems)
        super().__init__(message)


class ExpressionError(EngineError):
    """An expression in a BPMN file could not be parsed or evaluated."""

    default_message = "expression error"


class StoreError(EngineError):
    """The database failed in a way the engine cannot handle."""

    default_message = "storage error"


class BpmnError(Exception):
    """Raised by a handler for a *business* error: caught by a matching error boundary
    event or error event subprocess instead of being retried.

    Not an ``EngineError``: handlers raise it, the engine catches it.
    """

    def __init__(
        self, code: str, message: str = "", variables: Mapping[str, Any] | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.variables = dict(variables or {})
        super().__init__(f"{code}: {message}" if message else code)
