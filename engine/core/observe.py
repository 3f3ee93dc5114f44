"""Hook points the engine calls as work happens, for metrics, logs and traces.

Three things, all cheap when nobody listens:

- ``Observer``: the methods the runtime calls when an instance starts or ends, jobs are
  acquired and run, external tasks are fetched and reported. The base class does nothing;
  ``engine.work.metrics.EngineMetrics`` counts them into a Prometheus registry of its own (one
  per engine). This layer knows nothing of Prometheus.
- The log context: ``step(...)`` sets the ids of what runs now (instance, activity, job,
  attempt) in a context variable for the duration of a command, a job or a handler call;
  ``engine.core.logjson.JsonFormatter`` writes them on every line logged meanwhile, in that
  thread (or task).
- Spans: ``step(...)`` also opens an OpenTelemetry span (``engine.core.tracing``) when the
  optional ``opentelemetry-api`` is installed.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

from engine.core import tracing
from engine.core.values import ProcessInstance

#: The fields of the log context, in the order ``JsonFormatter`` writes them.
LOG_FIELDS = (
    "instance_id",
    "process_key",
    "activity_id",
    "job_id",
    "job_kind",
    "attempt",
    "external_task_id",
    "worker_id",
    "topic",
    "handler",
    "user_task_id",
)

F = TypeVar("F", bound=Callable[..., Any])

_EMPTY: Mapping[str, Any] = {}
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "spillway_log_context", default=_EMPTY
)


def current_fields() -> Mapping[str, Any]:
    """The ids of what this thread (or task) is running now, set by ``step``."""
    return _context.get()


def annotate(**fields: Any) -> None:
    """Add ids learnt inside the current step (an instance's id once it is loaded or made):
    to the log context until the step ends, and to its span; outside a step, nothing. Fields
    given as None are left out."""
    current = _context.get()
    if current is _EMPTY:
        return  # outside any step: nothing to scope the ids to, nothing to leak them into
    fields = {k: v for k, v in fields.items() if v is not None}
    _context.set({**current, **fields})
    if tracing.ENABLED:
        tracing.annotate_current(fields)


class step:  # lower case: used like a function, ``with observe.step(...)``
    """Run a block as one named step: its ids join the log context (on top of the enclosing
    step's), and an OpenTelemetry span ``name`` with them as ``spillway.*`` attributes is open
    around it when tracing is available (``name`` None: the log context only). Fields given as
    None are left out."""

    __slots__ = ("_fields", "_name", "_span", "_token")

    def __init__(self, name: str | None, **fields: Any) -> None:
        self._name = name
        if None in fields.values():
            fields = {k: v for k, v in fields.items() if v is not None}
        self._fields = fields
        self._token: contextvars.Token[Mapping[str, Any]] | None = None
        self._span: Any = None

    def __enter__(self) -> step:
        outer = _context.get()
        # Never the shared empty default, even without fields: that tells a step is open.
        self._token = _context.set({**outer, **self._fields})
        if tracing.ENABLED and self._name is not None:
            self._span = tracing.start(self._name, self._fields)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._span is not None:
            tracing.finish(self._span, exc)
            self._span = None
        if self._token is not None:
            _context.reset(self._token)
            self._token = None


def command(name: str, **rename: str) -> Callable[[F], F]:
    """Decorate a public verb: each call is ``step("spillway." + name)`` with the ids among its
    arguments (parameters named as a ``LOG_FIELDS`` entry, or renamed: ``task_id="user_task_id"``);
    a ``ProcessInstance`` it returns adds its id and process key."""

    def decorate(fn: F) -> F:
        params = list(inspect.signature(fn).parameters)
        wanted = {p: rename.get(p, p) for p in params if p in rename or p in LOG_FIELDS}
        positions = {params.index(p): field for p, field in wanted.items()}
        span_name = f"spillway.{name}"

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fields = {field: args[i] for i, field in positions.items() if i < len(args)}
            for p, field in wanted.items():
                if p in kwargs:
                    fields[field] = kwargs[p]
            with step(span_name, **fields):
                result = fn(*args, **kwargs)
                if isinstance(result, ProcessInstance):
                    annotate(instance_id=result.id, process_key=result.process_key)
                return result

        return wrapper  # type: ignore[return-value]

    return decorate


class QueueDepth(Protocol):
    """What a job executor tells about itself: locked jobs waiting for a worker thread."""

    def queued(self) -> int: ...


class Observer:
    """The engine's hook points; every method is a no-op here. Subclass and override what you
    count (``engine.work.metrics.EngineMetrics`` does). Methods are called on the thread doing
    the work, after the fact they report was committed, and must not raise."""

    def instance_committed(self, process_key: str, created: bool, state: str) -> None:
        """An instance write committed: ``created`` when it made the instance, ``state`` the
        state written (an ended state only once: an ended instance is never written again)."""

    def jobs_acquired(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        """Jobs were locked for execution (rows with ``kind`` and ``handler``)."""

    def job_started(self, job: Mapping[str, Any], latency: float) -> None:
        """A worker started running ``job``, ``latency`` seconds after it fell due."""

    def job_finished(self, job: Mapping[str, Any], outcome: str) -> None:
        """``outcome``: ``"executed"`` (its run committed), ``"failed"`` (the attempt failed,
        in its handler or in the run, and was counted: a retry is due or an incident opened),
        ``"released"`` (given back uncounted: its instance changed or the lock was lost),
        ``"dropped"`` (its instance ended or its definition is gone)."""

    def external_fetched(self, topic: str, count: int) -> None:
        """``count`` external tasks of ``topic`` were fetched and locked."""

    def external_completed(self, topic: str, count: int) -> None:
        """Completions of external tasks were applied."""

    def external_duplicate(self) -> None:
        """A completion was ignored: the task had already completed or was cancelled."""

    def external_lock_lost(self) -> None:
        """A report came from a worker that no longer held the task's lock (it expired and
        another worker fetched the task, or the task was unlocked)."""

    def executor_started(self, executor: QueueDepth) -> None:
        """A job executor of this engine started; its queue counts in the queue depth."""

    def executor_stopped(self, executor: QueueDepth) -> None:
        """That executor stopped."""


#: The observer of an engine that counts nothing.
NO_OBSERVER = Observer()

__all__ = [
    "LOG_FIELDS",
    "NO_OBSERVER",
    "Observer",
    "QueueDepth",
    "annotate",
    "command",
    "current_fields",
    "step",
]
