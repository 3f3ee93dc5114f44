"""``/version``, ``/deployment`` and ``/process-definition`` reads: what Camunda Modeler's
"Deploy" button and operators' tools call.

``POST /deployment/create`` takes Camunda's multipart form: ``deployment-name``,
``deployment-source``, ``enable-duplicate-filtering``, ``deploy-changed-only``, ``tenant-id``
and one part per file. Every file goes through the same hardened parser as ``eng.deploy``
(no DOCTYPE or entities, size and depth bounded). Spillway always filters duplicates: the same
files with the same content return the existing deployment, with ``deployedProcessDefinitions``
null as Camunda answers a filtered duplicate; a changed process gets its next version.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.core.values import Deployment
from engine.deploy.bpmnxml import MAX_FILES, Source
from engine.engine import ProcessEngine
from engine.http import params, queries
from engine.http.dates import format_date
from engine.http.errors import InvalidRequest, NotFoundError, json_response

#: What ``GET /version`` reports: the Camunda 7 REST API version whose shapes this follows.
CAMUNDA_VERSION = "7.22.0"
FORM_FIELDS = {
    "deployment-name",
    "deployment-source",
    "enable-duplicate-filtering",
    "deploy-changed-only",
    "tenant-id",
    "deployment-activation-time",
}


def _links(request: Request, path: str) -> list[dict[str, str]]:
    base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
    return [{"method": "GET", "href": f"{base}{path}", "rel": "self"}]


def deployment_dto(request: Request, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "links": _links(request, f"/deployment/{row['id']}"),
        "id": row["id"],
        "name": row["name"],
        "source": row.get("source"),
        "deploymentTime": format_date(row["created_at"]),
        "tenantId": None,
    }


def definition_dto(engine: ProcessEngine, row: dict[str, Any]) -> dict[str, Any]:
    tag = None
    try:
        model = engine.commands.model(row)
        name, tag = model.name or row["key"], model.version_tag
    except Exception:  # noqa: BLE001 - a definition whose source no longer parses keeps its key
        name = row["key"]
    return {
        "id": row["id"],
        "key": row["key"],
        "category": None,
        "description": None,
        "name": name,
        "version": int(row["version"]),
        "resource": os.path.basename(str(row["resource"])),
        "deploymentId": row["deployment_id"],
        "diagram": None,
        "suspended": False,
        "tenantId": None,
        "versionTag": tag,
        "historyTimeToLive": None,
        "startableInTasklist": True,
    }


async def version(request: Request) -> Response:
    return json_response({"version": CAMUNDA_VERSION})


def _deployments(request: Request) -> list[dict[str, Any]]:
    engine = params.engine_of(request)
    rows = queries.deployments(
        engine,
        params.query_str(request, "id"),
        params.query_str(request, "name"),
        params.query_str(request, "source"),
    )
    return params.page(request, [deployment_dto(request, r) for r in rows])


async def list_deployments(request: Request) -> Response:
    return json_response(await params.call(_deployments, request))


async def count_deployments(request: Request) -> Response:
    return json_response({"count": len(await params.call(_deployments, request))})


async def get_deployment(request: Request) -> Response:
    engine = params.engine_of(request)
    rows = await params.call(queries.deployments, engine, request.path_params["id"])
    if not rows:
        raise NotFoundError(f"Deployment with id '{request.path_params['id']}' does not exist")
    return json_response(deployment_dto(request, rows[0]))


def _safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    if not base or base in (".", ".."):
        raise InvalidRequest(f"a deployment file needs a file name, got {name!r}")
    return base[:255]


async def create_deployment(request: Request) -> Response:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest("POST /deployment/create expects multipart/form-data")
    limits = request.app.state.limits
    async with request.form(
        max_files=MAX_FILES, max_fields=100, max_part_size=limits.max_deployment_bytes
    ) as form:
        name: str | None = None
        origin: str | None = None
        sources: list[Source] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                sources.append(Source(_safe_name(value.filename or key), data))
            elif key == "deployment-name":
                name = value or None
            elif key == "deployment-source":
                origin = value or None
            elif key not in FORM_FIELDS:
                # A part without a file name: its field name is the resource name (curl -F).
                sources.append(Source(_safe_name(key), value.encode("utf-8")))
    if not sources:
        raise InvalidRequest("the deployment holds no resource (one file part per file)")
    engine = params.engine_of(request)
    deployment: Deployment = await params.call(
        engine.deploy, sources, name, deployment_source=origin
    )
    rows = await params.call(queries.deployments, engine, deployment.id)
    out = deployment_dto(request, rows[0])
    deployed: dict[str, Any] | None = None
    if not deployment.existing:
        defs = await params.call(queries.definitions, engine, deployment_id=deployment.id)
        deployed = {d["id"]: definition_dto(engine, d) for d in defs} or None
    out.update(
        deployedProcessDefinitions=deployed,
        deployedCaseDefinitions=None,
        deployedDecisionDefinitions=None,
        deployedDecisionRequirementsDefinitions=None,
    )
    return json_response(out)


def _definitions(request: Request) -> list[dict[str, Any]]:
    engine = params.engine_of(request)
    rows = queries.definitions(
        engine,
        key=params.query_str(request, "key"),
        definition_id=params.query_str(request, "processDefinitionId"),
        deployment_id=params.query_str(request, "deploymentId"),
        latest=bool(params.query_bool(request, "latestVersion")),
    )
    version_filter = params.query_int(request, "version", minimum=1)
    if version_filter is not None:
        rows = [r for r in rows if int(r["version"]) == version_filter]
    return params.page(request, [definition_dto(engine, r) for r in rows])


async def list_definitions(request: Request) -> Response:
    return json_response(await params.call(_definitions, request))


async def count_definitions(request: Request) -> Response:
    return json_response({"count": len(await params.call(_definitions, request))})


def definition_row(request: Request) -> dict[str, Any]:
    """The definition a ``/process-definition/{id}`` or ``/key/{key}`` path names (the latest
    version for a key)."""
    engine = params.engine_of(request)
    if "key" in request.path_params:
        key = request.path_params["key"]
        rows = queries.definitions(engine, key=key, latest=True)
        if not rows:
            raise NotFoundError(f"No matching process definition with key: {key}")
        return rows[0]
    definition_id = request.path_params["id"]
    rows = queries.definitions(engine, definition_id=definition_id)
    if not rows:
        raise NotFoundError(f"No matching definition with id {definition_id}")
    return rows[0]


async def get_definition(request: Request) -> Response:
    engine = params.engine_of(request)
    row = await params.call(definition_row, request)
    return json_response(await params.call(definition_dto, engine, row))


def _xml(request: Request) -> dict[str, Any]:
    engine = params.engine_of(request)
    row = definition_row(request)
    for resource in engine.store.resources(row["deployment_id"]):
        if resource["name"] == row["resource"]:
            return {"id": row["id"], "bpmn20Xml": bytes(resource["content"]).decode("utf-8")}
    raise NotFoundError(f"definition {row['id']} has no stored source")


async def get_xml(request: Request) -> Response:
    return json_response(await params.call(_xml, request))


def routes() -> list[BaseRoute]:
    return [
        Route("/version", version, methods=["GET"]),
        Route("/deployment", list_deployments, methods=["GET"]),
        Route("/deployment/count", count_deployments, methods=["GET"]),
        Route("/deployment/create", create_deployment, methods=["POST"]),
        Route("/deployment/{id}", get_deployment, methods=["GET"]),
        Route("/process-definition", list_definitions, methods=["GET"]),
        Route("/process-definition/count", count_definitions, methods=["GET"]),
        Route("/process-definition/key/{key}", get_definition, methods=["GET"]),
        Route("/process-definition/key/{key}/xml", get_xml, methods=["GET"]),
        Route("/process-definition/{id}", get_definition, methods=["GET"]),
        Route("/process-definition/{id}/xml", get_xml, methods=["GET"]),
    ]
