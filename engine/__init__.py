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
    InvalidVariables,
    LockLost,
    NotFound,
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
    "InvalidVariables",
    "Job",
    "LockLost",
    "NotFound",
    "ProcessEngine",
    "ProcessInstance",
    "RetryPolicy",
    "TaskContext",
]
