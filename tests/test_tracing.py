"""OpenTelemetry spans around the engine's commands, jobs and handler calls, recorded by the
SDK's in-memory exporter (the ``test`` extra installs ``opentelemetry-sdk``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine import BpmnError, ProcessEngine, RetryPolicy
from engine.testing import ManualClock
from tests.bpmnbuild import process, service
from tests.conftest import EngineFactory

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the process's provider is set once
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_spillway_test", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._spillway_test = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_a_start_is_a_span_with_its_handler_call_inside(
    eng: ProcessEngine, spans: InMemorySpanExporter
) -> None:
    eng.register_handler("charge", lambda ctx: {"charged": True})
    eng.deploy(process("order", service("Charge", handler="charge")))
    inst = eng.start("order", business_key="A-17")

    (start,) = named(spans, "spillway.start")
    (call,) = named(spans, "spillway.handler")
    assert attrs(start)["spillway.process_key"] == "order"
    assert attrs(start)["spillway.instance_id"] == inst.id
    assert attrs(call) == {
        "spillway.handler": "charge",
        "spillway.instance_id": inst.id,
        "spillway.activity_id": "Charge",
        "spillway.attempt": 1,
    }
    assert call.parent is not None and call.parent.span_id == start.context.span_id
    assert call.context.trace_id == start.context.trace_id
    assert start.status.status_code != StatusCode.ERROR


def test_a_failing_job_records_the_error_on_its_handler_span(
    make_engine: EngineFactory, clock: ManualClock, spans: InMemorySpanExporter
) -> None:
    eng = make_engine(retry_policy=RetryPolicy(retries=1, initial_delay=60.0, jitter=0.0))

    def broken(ctx: object) -> None:
        raise RuntimeError("the card service is down")

    eng.register_handler("charge", broken)
    eng.deploy(process("order", service("Charge", handler="charge")))
    inst = eng.start("order")
    spans.clear()
    clock.advance(60)
    assert eng.run_jobs() == 1

    (job,) = named(spans, "spillway.job")
    (call,) = named(spans, "spillway.handler")
    (retry_job,) = eng.jobs(inst.id)
    assert attrs(job) == {
        "spillway.job_id": retry_job.id,
        "spillway.job_kind": "async-continuation",
        "spillway.instance_id": inst.id,
        "spillway.activity_id": "Charge",
        "spillway.attempt": 2,
        "spillway.process_key": "order",
    }
    assert attrs(call)["spillway.attempt"] == 2
    assert call.parent is not None and call.parent.span_id == job.context.span_id
    assert call.status.status_code == StatusCode.ERROR
    (event,) = call.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.message"] == "the card service is down"


def test_a_bpmn_error_is_an_event_not_a_failure(
    eng: ProcessEngine, spans: InMemorySpanExporter
) -> None:
    def declined(ctx: object) -> None:
        raise BpmnError("CARD_DECLINED")

    eng.register_handler("charge", declined)
    boundary = (
        '<bpmn:boundaryEvent id="Declined" attachedToRef="Charge">'
        '<bpmn:errorEventDefinition errorRef="E" /></bpmn:boundaryEvent>'
        '<bpmn:endEvent id="Refused" />'
    )
    eng.deploy(
        process(
            "order",
            service("Charge", handler="charge"),
            flows=[("StartEvent_1", "Charge"), ("Charge", "EndEvent_1"), ("Declined", "Refused")],
            extra=boundary,
            definitions='<bpmn:error id="E" errorCode="CARD_DECLINED" />',
        )
    )
    assert eng.start("order").state == "completed"
    (call,) = named(spans, "spillway.handler")
    assert call.status.status_code != StatusCode.ERROR
    assert [(e.name, dict(e.attributes or {})) for e in call.events] == [
        ("bpmn_error", {"spillway.error_code": "CARD_DECLINED"})
    ]


def test_external_task_reports_are_spans(eng: ProcessEngine, spans: InMemorySpanExporter) -> None:
    eng.deploy(
        process("bill", service("B", extra='camunda:type="external" camunda:topic="billing"'))
    )
    inst = eng.start("bill")
    (task,) = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    assert eng.external_tasks.complete(task.id, "w1")
    (fetch,) = named(spans, "spillway.fetch_and_lock")
    (report,) = named(spans, "spillway.external_task.complete")
    assert attrs(fetch)["spillway.worker_id"] == "w1"
    assert attrs(report)["spillway.external_task_id"] == task.id
    assert attrs(report)["spillway.worker_id"] == "w1"
    assert attrs(report)["spillway.instance_id"] == inst.id
