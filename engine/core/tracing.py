"""OpenTelemetry spans, when the optional ``opentelemetry-api`` is installed (extra ``otel``).

Spillway is an instrumented library, as OpenTelemetry means it: it only calls the API; the
application that wants traces sets a ``TracerProvider`` (the SDK's) with an exporter (see
docs/operations.md). Until one is set no span is made at all (they would record nothing, and
even a non-recording span costs tens of microseconds). Without the package installed nothing
is imported and ``ENABLED`` is False, so ``engine.core.observe.step`` skips tracing entirely.
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
# (provider, its tracer) of the last span made: the provider is set once per process.
_cached: tuple[Any, Any] | None = None


def _tracer() -> Any:
    """The tracer of the application's TracerProvider; None while none is set (the API's
    proxy provider), when spans would record nothing: then none are made, which keeps the
    installed-but-unconfigured API at the cost of one global read per step."""
    global _cached
    assert _trace is not None
    provider = _trace.get_tracer_provider()
    if isinstance(provider, _trace.ProxyTracerProvider):
        return None
    cached = _cached
    if cached is None or cached[0] is not provider:
        cached = _cached = (provider, provider.get_tracer(TRACER_NAME))
    return cached[1]


def start(name: str, fields: Mapping[str, Any]) -> Any:
    """Open span ``name`` as the current span, with ``fields`` as ``spillway.*`` attributes;
    what ``finish`` takes (None: no provider is set, no span was made)."""
    assert _trace is not None
    tracer = _tracer()
    if tracer is None:
        return None
    span = tracer.start_span(name, attributes=_attributes(fields))
    token = _context.attach(_trace.set_span_in_context(span))
    return span, token


def annotate_current(fields: Mapping[str, Any]) -> None:
    """Add ``fields`` to the current span (a no-op when none records)."""
    assert _trace is not None
    if _cached is None:
        return  # no span was ever made: none is current
    span = _trace.get_current_span()
    if span.is_recording():
        span.set_attributes(_attributes(fields))


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
