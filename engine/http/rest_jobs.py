"""``/job`` and ``/incident``: what an operator sees of failed work, and the retry buttons."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.core.values import Incident, Job
from engine.engine import ProcessEngine
from engine.http import params
from engine.http.dates import format_date
from engine.http.errors import InvalidRequest, NotFoundError, json_response, no_content
from engine.http.limits import read_json


def _instance_rows(engine: ProcessEngine, ids: set[str | None]) -> dict[str, dict[str, Any]]:
    wanted = sorted(i for i in ids if i)
    rows = engine.store.instances(ids=wanted) if wanted else []
    return {r["id"]: r for r in rows}


def job_dto(job: Job, instances: dict[str, dict[str, Any]]) -> dict[str, Any]:
    inst = instances.get(job.instance_id or "") or {}
    definition_id = job.definition_id or inst.get("definition_id")
    key = inst.get("process_key")
    if key is None and definition_id:
        key = str(definition_id).split(":", 1)[0]
    return {
        "id": job.id,
        "jobDefinitionId": None,
        "processInstanceId": job.instance_id,
        "processDefinitionId": definition_id,
        "processDefinitionKey": key,
        "executionId": job.instance_id,
        "exceptionMessage": job.last_error,
        "failedActivityId": job.activity_id if job.last_error else None,
        "retries": job.retries_left,
        "dueDate": format_date(job.due_at),
        "suspended": False,
        "priority": 0,
        "tenantId": None,
        "createTime": format_date(job.created_at),
        "batchId": None,
    }


def _jobs(request: Request) -> list[dict[str, Any]]:
    engine = params.engine_of(request)
    jobs = engine.jobs(params.query_str(request, "processInstanceId"))
    job_id = params.query_str(request, "jobId")
    ids = params.query_list(request, "jobIds")
    activity = params.query_str(request, "activityId")
    with_retries = params.query_bool(request, "withRetriesLeft")
    no_retries = params.query_bool(request, "noRetriesLeft")
    with_exception = params.query_bool(request, "withException")
    chosen = [
        j
        for j in jobs
        if (job_id is None or j.id == job_id)
        and (ids is None or j.id in ids)
        and (activity is None or j.activity_id == activity)
        and not (with_retries and j.retries_left <= 0)
        and not (no_retries and j.retries_left > 0)
        and not (with_exception and not j.last_error)
    ]
    instances = _instance_rows(engine, {j.instance_id for j in chosen})
    return params.page(request, [job_dto(j, instances) for j in chosen])


async def list_jobs(request: Request) -> Response:
    return json_response(await params.call(_jobs, request))


async def count_jobs(request: Request) -> Response:
    return json_response({"count": len(await params.call(_jobs, request))})


def _job(engine: ProcessEngine, job_id: str) -> dict[str, Any]:
    for job in engine.jobs():
        if job.id == job_id:
            return job_dto(job, _instance_rows(engine, {job.instance_id}))
    raise NotFoundError(f"Job with id {job_id} does not exist")


async def get_job(request: Request) -> Response:
    engine = params.engine_of(request)
    return json_response(await params.call(_job, engine, request.path_params["id"]))


def _set_retries(engine: ProcessEngine, job_id: str, retries: int) -> None:
    if engine.store.job(job_id) is None:
        raise NotFoundError(f"Job with id {job_id} does not exist")
    engine.retry(job_id, retries=retries)


async def set_retries(request: Request) -> Response:
    body = await read_json(request, required=True)
    retries = params.required(body, "retries", int)
    if retries < 1:
        raise InvalidRequest("retries must be >= 1 (Spillway keeps a job's incident at 0)")
    engine = params.engine_of(request)
    await params.call(_set_retries, engine, request.path_params["id"], retries)
    return no_content()


async def execute(request: Request) -> Response:
    engine = params.engine_of(request)
    await params.call(engine.execute_job, request.path_params["id"])
    return no_content()


INCIDENT_TYPES = {"failed-job": "failedJob", "failed-external-task": "failedExternalTask"}


def incident_dto(incident: Incident, instances: dict[str, dict[str, Any]]) -> dict[str, Any]:
    inst = instances.get(incident.instance_id or "") or {}
    return {
        "id": incident.id,
        "processDefinitionId": inst.get("definition_id"),
        "processInstanceId": incident.instance_id,
        "executionId": incident.instance_id,
        "incidentTimestamp": format_date(incident.created_at),
        "incidentType": INCIDENT_TYPES.get(incident.kind, incident.kind),
        "activityId": incident.activity_id,
        "failedActivityId": incident.activity_id,
        "causeIncidentId": incident.id,
        "rootCauseIncidentId": incident.id,
        "configuration": incident.job_id,
        "tenantId": None,
        "incidentMessage": incident.message,
        "jobDefinitionId": None,
        "annotation": None,
    }


def _incidents(request: Request) -> list[dict[str, Any]]:
    engine = params.engine_of(request)
    found = engine.incidents(params.query_str(request, "processInstanceId"), open_only=True)
    incident_id = params.query_str(request, "incidentId")
    kind = params.query_str(request, "incidentType")
    activity = params.query_str(request, "activityId")
    chosen = [
        i
        for i in found
        if (incident_id is None or i.id == incident_id)
        and (kind is None or INCIDENT_TYPES.get(i.kind, i.kind) == kind)
        and (activity is None or i.activity_id == activity)
    ]
    instances = _instance_rows(engine, {i.instance_id for i in chosen})
    return params.page(request, [incident_dto(i, instances) for i in chosen])


async def list_incidents(request: Request) -> Response:
    return json_response(await params.call(_incidents, request))


async def count_incidents(request: Request) -> Response:
    return json_response({"count": len(await params.call(_incidents, request))})


def routes() -> list[BaseRoute]:
    return [
        Route("/job", list_jobs, methods=["GET"]),
        Route("/job/count", count_jobs, methods=["GET"]),
        Route("/job/{id}", get_job, methods=["GET"]),
        Route("/job/{id}/retries", set_retries, methods=["PUT"]),
        Route("/job/{id}/execute", execute, methods=["POST"]),
        Route("/incident", list_incidents, methods=["GET"]),
        Route("/incident/count", count_incidents, methods=["GET"]),
    ]
