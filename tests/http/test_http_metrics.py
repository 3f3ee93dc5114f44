"""``/metrics`` scraped over HTTP from a real server: every counter has exactly the value of
what the test made happen (instances started, completed and cancelled; jobs acquired, run and
failed; external tasks fetched, completed, completed twice and reported after losing the lock;
requests by route template), the database gauges read what the database holds, and the
endpoint obeys the API's authentication (or not, from loopback, when asked)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import AUTH, Served, serve
from prometheus_client.parser import text_string_to_metric_families

from engine import ProcessEngine, RetryPolicy
from engine.testing import ManualClock
from tests.bpmnbuild import process, service

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

EXTERNAL = 'camunda:type="external" camunda:topic="billing"'


def scrape(s: Served, auth: tuple[str, str] | None = AUTH) -> Samples:
    url = s.base.removesuffix("/engine-rest") + "/metrics"
    response = httpx.get(url, auth=auth, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def metered(db_url: str) -> Iterator[tuple[Served, ManualClock]]:
    clock = ManualClock()
    eng = ProcessEngine(
        db_url, clock=clock, retry_policy=RetryPolicy(retries=1, initial_delay=60.0, jitter=0.0)
    )
    eng.register_handler("ok", lambda ctx: None)

    def broken(ctx: object) -> None:
        raise RuntimeError("the card service is down")

    eng.register_handler("broken", broken)
    eng.deploy(process("Quick", service("A", handler="ok")))
    eng.deploy(process("Flaky", service("F", handler="broken")))
    eng.deploy(process("Deferred", service("D", handler="ok", extra='camunda:asyncBefore="true"')))
    eng.deploy(process("Billing", service("B", extra=EXTERNAL)))
    s = serve(eng)
    yield s, clock
    s.client.close()
    s.stop()
    eng.close()


def test_counters_and_gauges_are_exactly_what_happened(
    metered: tuple[Served, ManualClock],
) -> None:
    s, clock = metered
    eng, client = s.engine, s.client
    for _ in range(3):
        assert client.post("/process-definition/key/Quick/start", json={}).status_code == 200
    flaky = [eng.start("Flaky"), eng.start("Flaky")]
    eng.start("Deferred")
    for _ in range(3):
        eng.start("Billing")

    m = scrape(s)
    assert value(m, "spillway_process_instances_started_total", process_key="Quick") == 3
    assert value(m, "spillway_process_instances_completed_total", process_key="Quick") == 3
    assert value(m, "spillway_process_instances_started_total", process_key="Flaky") == 2
    assert value(m, "spillway_process_instances_completed_total", process_key="Flaky") is None
    assert value(m, "spillway_jobs_due") == 1  # Deferred's; Flaky's retries are due in 60 s
    assert value(m, "spillway_incidents_open", kind="failed-job") == 0
    assert value(m, "spillway_job_executor_queue_depth") == 0

    clock.advance(61)
    assert value(scrape(s), "spillway_jobs_due") == 3
    assert eng.run_jobs() == 3
    m = scrape(s)
    job = {"kind": "async-continuation"}
    assert value(m, "spillway_jobs_acquired_total", **job, handler="ok") == 1
    assert value(m, "spillway_jobs_acquired_total", **job, handler="broken") == 2
    assert value(m, "spillway_jobs_executed_total", **job, handler="ok") == 1
    assert value(m, "spillway_jobs_failed_total", **job, handler="broken") == 2
    assert value(m, "spillway_jobs_executed_total", **job, handler="broken") is None
    assert value(m, "spillway_process_instances_completed_total", process_key="Deferred") == 1
    # Retries used up: both Flaky instances have an incident.
    assert value(m, "spillway_incidents_open", kind="failed-job") == 2
    assert value(m, "spillway_jobs_due") == 0
    # Pickup latency on the engine clock: Deferred's job waited 61 s, the retries 1 s each.
    latency = "spillway_job_pickup_latency_seconds"
    assert value(m, f"{latency}_count", **job) == 3
    assert value(m, f"{latency}_sum", **job) == pytest.approx(63.0)
    assert value(m, f"{latency}_bucket", **job, le="1.0") == 2
    assert value(m, f"{latency}_bucket", **job, le="60.0") == 2
    assert value(m, f"{latency}_bucket", **job, le="300.0") == 3

    # External tasks through the REST API, as a Camunda client works them.
    def fetch(worker: str, n: int) -> list[dict[str, object]]:
        body = {
            "workerId": worker,
            "maxTasks": n,
            "topics": [{"topicName": "billing", "lockDuration": 1000}],
        }
        got = client.post("/external-task/fetchAndLock", json=body)
        assert got.status_code == 200
        tasks: list[dict[str, object]] = got.json()
        return tasks

    def complete(task_id: object, worker: str) -> int:
        return client.post(
            f"/external-task/{task_id}/complete", json={"workerId": worker}
        ).status_code

    first, second = fetch("w1", 2)
    assert complete(first["id"], "w1") == 204
    assert complete(first["id"], "w1") == 204  # a duplicate: ignored, as Camunda answers it
    clock.advance(2)  # w1's lock on the second task expires; w2 takes it and the third
    assert len(fetch("w2", 5)) == 2
    assert complete(second["id"], "w1") >= 400  # w1 lost the lock
    m = scrape(s)
    assert value(m, "spillway_external_tasks_fetched_total", topic="billing") == 4
    assert value(m, "spillway_external_tasks_completed_total", topic="billing") == 1
    assert value(m, "spillway_external_tasks_duplicates_total") == 1
    assert value(m, "spillway_external_tasks_lock_lost_total") == 1
    for task in eng.external_tasks.list(topic="billing"):
        assert complete(task.id, "w2") == 204
    m = scrape(s)
    assert value(m, "spillway_external_tasks_completed_total", topic="billing") == 3
    assert value(m, "spillway_process_instances_completed_total", process_key="Billing") == 3

    # Cancelling an instance terminates it and closes its incident.
    assert client.delete(f"/process-instance/{flaky[0].id}").status_code == 204
    m = scrape(s)
    assert value(m, "spillway_process_instances_terminated_total", process_key="Flaky") == 1
    assert value(m, "spillway_incidents_open", kind="failed-job") == 1

    # Requests by method, route template (never the raw path) and status.
    duration = "spillway_http_request_duration_seconds_count"
    start = {"method": "POST", "route": "/engine-rest/process-definition/key/{key}/start"}
    assert value(m, duration, **start, status="200") == 3
    done = {"method": "POST", "route": "/engine-rest/external-task/{id}/complete"}
    assert value(m, duration, **done, status="204") == 4
    assert (
        sum(
            v
            for (name, labels), v in m.items()
            if name == duration
            and ("route", done["route"]) in labels
            and ("status", "204") not in labels
        )
        == 1
    )  # the refused one
    fetched = {"method": "POST", "route": "/engine-rest/external-task/fetchAndLock"}
    assert value(m, duration, **fetched, status="200") == 2
    cancel = {"method": "DELETE", "route": "/engine-rest/process-instance/{id}"}
    assert value(m, duration, **cancel, status="204") == 1
    assert not [
        labels for (name, labels), _ in m.items() if any(flaky[0].id in v for _, v in labels)
    ]
    # Scrapes count too, under their own route (a scrape is timed once its answer is out).
    assert value(m, duration, method="GET", route="/metrics", status="200") == 5


def test_metrics_need_the_api_credentials(metered: tuple[Served, ManualClock]) -> None:
    s, _clock = metered
    url = s.base.removesuffix("/engine-rest") + "/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=("demo", "wrong")).status_code == 401
    m = scrape(s)
    refused = {"method": "GET", "route": "(unmatched)", "status": "401"}
    assert value(m, "spillway_http_request_duration_seconds_count", **refused) == 2


def test_loopback_scrapes_without_credentials_when_chosen(db_url: str) -> None:
    eng = ProcessEngine(db_url)
    s = serve(eng, metrics_auth="loopback")
    try:
        root = s.base.removesuffix("/engine-rest")
        assert httpx.get(f"{root}/metrics").status_code == 200  # the test client is loopback
        assert httpx.get(f"{s.base}/version").status_code == 401  # the API is not opened
        assert httpx.get(f"{root}/metrics/../engine-rest/version").status_code == 401
    finally:
        s.client.close()
        s.stop()
        eng.close()


def test_an_engine_without_metrics_serves_no_metrics_route(db_url: str) -> None:
    eng = ProcessEngine(db_url, metrics=False)
    s = serve(eng)
    try:
        assert eng.metrics is None
        root = s.base.removesuffix("/engine-rest")
        assert httpx.get(f"{root}/metrics", auth=AUTH).status_code == 404
        assert s.client.get("/version").status_code == 200
    finally:
        s.client.close()
        s.stop()
        eng.close()
