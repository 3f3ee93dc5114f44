"""The served OpenAPI document describes the implemented API: schemathesis generates requests
from it and checks that no answer is a 500 and every answer matches the document (status code,
content type, body schema). Bounded: a few examples per operation, no shrinking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from conftest import HERE
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette

from engine import ProcessEngine
from engine.core.clock import SystemClock
from engine.http.app import create_app, hub_of

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


OPERATE = hasattr(ProcessEngine, "cancel")


def _needs_operate(method: str, path: str) -> bool:
    if path.startswith("/task"):
        return True
    return path.startswith("/process-instance/{id}") and method in ("DELETE", "POST", "PUT")


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    db = Path(tmp_path_factory.mktemp("openapi")) / "spillway.db"
    eng = ProcessEngine(f"sqlite:///{db}", clock=SystemClock())
    eng.deploy(str(HERE / "payment.bpmn"))
    inst = eng.start("Payment", {"amount": 1, "order": {"lines": [1]}}, business_key="A")
    eng.external_tasks.fetch_and_lock("seed", ["charge"], lock_duration=600.0)
    eng.start("Payment", {"amount": 2})
    assert inst.id
    app = create_app(eng, listen=False)
    # Long polls answer at once, so a generated asyncResponseTimeout of 30 minutes does not
    # hold the run (long polling has its own tests).
    hub_of(app).closed = True
    yield app
    eng.close()


@pytest.fixture(scope="module")
def api_schema(api_app: Starlette) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/engine-rest/openapi.json", api_app)


def test_api_conforms_to_its_openapi_document(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        if not OPERATE and _needs_operate(operation.method.upper(), operation.path):
            continue  # 501 until the operator verbs are merged (tested there)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=5,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        check()


def test_the_document_lists_the_contract_endpoints(api_schema: schemathesis.BaseSchema) -> None:
    paths = set(api_schema.raw_schema["paths"])
    for path in (
        "/version",
        "/deployment",
        "/deployment/create",
        "/process-definition",
        "/process-definition/key/{key}/start",
        "/process-definition/{id}/start",
        "/process-instance",
        "/process-instance/{id}",
        "/process-instance/{id}/variables",
        "/message",
        "/task",
        "/task/{id}/claim",
        "/task/{id}/unclaim",
        "/task/{id}/complete",
        "/external-task/fetchAndLock",
        "/external-task/{id}/complete",
        "/external-task/{id}/failure",
        "/external-task/{id}/bpmnError",
        "/external-task/{id}/extendLock",
        "/external-task/{id}/unlock",
        "/external-task/{id}/lock",
        "/external-task",
        "/job",
        "/job/{id}/retries",
        "/job/{id}/execute",
        "/incident",
    ):
        assert path in paths, path
