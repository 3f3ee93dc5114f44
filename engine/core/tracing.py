"""OpenTelemetry spans, when the optional ``opentelemetry-api`` is installed (extra ``otel``).

Spillway is an instrumented library, as OpenTelemetry means it: it only calls the API. With no
SDK configured those calls make non-recording spans and cost a few microseconds; the
application that wants traces configures a ``TracerProvider`` and an exporter (see
docs/operations.md). Without the package installed nothing is imported and ``ENABLED`` is
False, so ``engine.core.observe.step`` skips tracing entirely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.core.errors import BpmnError

try:  # the optional extra
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised where the extra is absent
    _trace = None  # type: ignore[assignment]
    _context = None  # type: ignore[assignment]

#: Whether spans are made (the OpenTelemetry API is importable).
ENABLED = _trace is not None

TRACER_NAME = "spillway"
ATTRIBUTE_PREFIX = "spillway."
# A proxy until the application sets its TracerProvider, then that provider's tracer.
_tracer = _trace.get_tracer(TRACER_NAME) if _trace is not None else None


def start(name: str, fields: Mapping[str, Any]) -> Any:
    """Open span ``name`` as the current span, with ``fields`` as ``spillway.*`` attributes;
    what ``finish`` takes."""
    assert _trace is not None
    assert _tracer is not None
    span = _tracer.start_span(name, attributes=_attributes(fields))
    token = _context.attach(_trace.set_span_in_context(span))
    return span, token


def annotate_current(fields: Mapping[str, Any]) -> None:
    """Add ``fields`` to the current span (a no-op when none records)."""
    assert _trace is not None
    _trace.get_current_span().set_attributes(_attributes(fields))


def finish(handle: Any, exc: BaseException | None) -> None:
    """End the span; an exception leaving the block is recorded on it, status ERROR (a
    ``BpmnError`` is an event ``bpmn_error`` instead: the model handles it)."""
    assert _trace is not None
    span, token = handle
    try:
        if isinstance(exc, BpmnError):  # a business outcome, taken by the model: no error
            span.add_event("bpmn_error", {ATTRIBUTE_PREFIX + "error_code": exc.code})
        elif exc is not None:
            span.record_exception(exc)
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{type(exc).__name__}"))
        span.end()
    finally:
        _context.detach(token)


def _attributes(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        ATTRIBUTE_PREFIX + k: v if isinstance(v, str | bool | int | float) else str(v)
        for k, v in fields.items()
    }


__all__ = ["ENABLED", "annotate_current", "finish", "start"]
