"""Spillway: a lightweight BPMN workflow engine for Python.

The names in ``__all__`` are the public surface (CONTRACT.md); everything else may change.
"""

from engine.core.errors import (
    BpmnError,
    ConcurrencyConflict,
    CorrelationError,
    DeploymentError,
    EngineError,
    ExpressionError,
    HandlerError,
    InstanceSuspended,
    InvalidOperation,
    InvalidVariables,
    LockLost,
    NotFound,
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
    "ConcurrencyConflict",
    "CorrelationError",
    "Deployment",
    "DeploymentError",
    "EngineError",
    "ExpressionError",
    "ExternalTask",
    "HandlerError",
    "HistoryEntry",
    "Incident",
    "InstanceSuspended",
    "InvalidOperation",
    "InvalidVariables",
    "Job",
    "LockLost",
    "NotFound",
    "ProcessEngine",
    "ProcessInstance",
    "RetryPolicy",
    "TaskClaimed",
    "TaskContext",
    "UserTask",
    "VariableChange",
]
