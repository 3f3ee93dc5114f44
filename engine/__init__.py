"""Spillway: a lightweight BPMN workflow engine for Python.

The names in ``__all__`` are the public surface (CONTRACT.md); everything else may change.
"""

from engine.core.errors import (
    BpmnError,
    CommitUnknown,
    ConcurrencyConflict,
    CorrelationError,
    CycleLimitExceeded,
    DeploymentError,
    EngineError,
    ExpressionError,
    HandlerError,
    InstanceSuspended,
    InvalidArgument,
    InvalidOperation,
    InvalidVariables,
    LockLost,
    NotCommitted,
    NotFound,
    StoreError,
    TaskClaimed,
)
from engine.core.retry import RetryPolicy
from engine.core.values import (
    Deployment,
    ExternalTask,
    HistoryEntry,
    Incident,
    Job,
    ProcessInstance,
    TaskContext,
    UserTask,
    VariableChange,
)
from engine.engine import ProcessEngine

__all__ = [
    "BpmnError",
    "CommitUnknown",
    "ConcurrencyConflict",
    "CorrelationError",
    "CycleLimitExceeded",
    "Deployment",
    "DeploymentError",
    "EngineError",
    "ExpressionError",
    "ExternalTask",
    "HandlerError",
    "HistoryEntry",
    "Incident",
    "InstanceSuspended",
    "InvalidArgument",
    "InvalidOperation",
    "InvalidVariables",
    "Job",
    "LockLost",
    "NotCommitted",
    "NotFound",
    "ProcessEngine",
    "ProcessInstance",
    "RetryPolicy",
    "StoreError",
    "TaskClaimed",
    "TaskContext",
    "UserTask",
    "VariableChange",
]
