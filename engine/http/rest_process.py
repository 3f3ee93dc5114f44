"""Starting and reading process instances, their variables, and messages.

``GET /process-instance`` lists running instances (active or with an incident), as Camunda's
runtime query does; ``GET /process-instance/{id}`` also answers an ended instance, with
``ended: true`` (Camunda answers 404 once an instance is over; Spillway keeps it until history
cleanup, and that answer is what a caller polling for the end wants).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.core.values import ProcessInstance
from engine.engine import ProcessEngine
from engine.http import params
from engine.http.errors import InvalidRequest, NotFoundError, json_response, no_content
from engine.http.limits import read_json
from engine.http.operate import verb
from engine.http.rest_deploy import definition_row
from engine.http.variables import from_typed, from_typed_map, to_typed, to_typed_map

RUNNING = ("active", "incident")


def instance_dto(request: Request, inst: ProcessInstance) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
    return {
        "links": [{"method": "GET", "href": f"{base}/process-instance/{inst.id}", "rel": "self"}],
        "id": inst.id,
        "definitionId": inst.definition_id,
        "definitionKey": inst.process_key,
        "businessKey": inst.business_key,
        "caseInstanceId": None,
        "ended": inst.state not in RUNNING,
        "suspended": bool(getattr(inst, "suspended", False)),
        "tenantId": None,
    }


def _start(request: Request, body: Mapping[str, Any]) -> ProcessInstance:
    engine = params.engine_of(request)
    row = definition_row(request)
    values = from_typed_map(body.get("variables"))
    business_key = params.field(body, "businessKey", str)
    if params.field(body, "startInstructions", list):
        raise InvalidRequest("startInstructions are not supported; start at the start event")
    if "key" in request.path_params:
        return engine.start(row["key"], values, business_key=business_key)
    return engine.start_definition(row["id"], values, business_key=business_key)


async def start(request: Request) -> Response:
    body = await read_json(request)
    inst = await params.call(_start, request, body)
    out = instance_dto(request, inst)
    if params.field(body, "withVariablesInReturn", bool, False):
        out["variables"] = to_typed_map(inst.variables)
    return json_response(out)


def _instances(request: Request) -> list[dict[str, Any]]:
    engine = params.engine_of(request)
    found = engine.instances(
        process_key=params.query_str(request, "processDefinitionKey"),
        business_key=params.query_str(request, "businessKey"),
    )
    ids = params.query_list(request, "processInstanceIds")
    definition_id = params.query_str(request, "processDefinitionId")
    with_incident = params.query_bool(request, "withIncident")
    suspended = params.query_bool(request, "suspended")
    active = params.query_bool(request, "active")
    out = []
    for inst in found:
        if inst.state not in RUNNING:
            continue
        if ids is not None and inst.id not in ids:
            continue
        if definition_id is not None and inst.definition_id != definition_id:
            continue
        if with_incident and inst.state != "incident":
            continue
        is_suspended = bool(getattr(inst, "suspended", False))
        if (suspended and not is_suspended) or (active and is_suspended):
            continue
        out.append(instance_dto(request, inst))
    return params.page(request, out)


async def list_instances(request: Request) -> Response:
    return json_response(await params.call(_instances, request))


async def count_instances(request: Request) -> Response:
    return json_response({"count": len(await params.call(_instances, request))})


async def get_instance(request: Request) -> Response:
    engine = params.engine_of(request)
    inst = await params.call(engine.get_instance, request.path_params["id"])
    return json_response(instance_dto(request, inst))


async def delete_instance(request: Request) -> Response:
    engine = params.engine_of(request)
    instance_id = request.path_params["id"]
    inst = await params.call(engine.get_instance, instance_id)
    if inst.state not in RUNNING:
        raise NotFoundError(f"Process instance with id {instance_id} does not exist")
    reason = params.query_str(request, "deleteReason") or "deleted over the REST API"
    await params.call(verb(engine, "cancel"), instance_id, reason=reason)
    return no_content()


def _variables_of(engine: ProcessEngine, instance_id: str) -> dict[str, Any]:
    return engine.get_instance(instance_id).variables


async def get_variables(request: Request) -> Response:
    engine = params.engine_of(request)
    values = await params.call(_variables_of, engine, request.path_params["id"])
    return json_response(to_typed_map(values))


async def get_variable(request: Request) -> Response:
    engine = params.engine_of(request)
    name = request.path_params["name"]
    values = await params.call(_variables_of, engine, request.path_params["id"])
    if name not in values:
        raise NotFoundError(
            f"process instance {request.path_params['id']} has no variable '{name}'"
        )
    return json_response(to_typed(values[name]))


def _modify(
    engine: ProcessEngine, instance_id: str, values: dict[str, Any], deletions: list[str]
) -> None:
    engine.get_instance(instance_id)  # 404 before anything changes
    if values or deletions:
        # One transaction: a refused deletion leaves the modifications unapplied too.
        verb(engine, "update_variables")(instance_id, values, deletions)


async def modify_variables(request: Request) -> Response:
    """``POST /process-instance/{id}/variables``: ``{"modifications": {...}, "deletions": [...]}``.
    Also ``PUT`` with the same body or a bare map of typed values (Spillway's shorthand)."""
    body = await read_json(request, required=True)
    if "modifications" in body or "deletions" in body:
        values = from_typed_map(body.get("modifications"), "modifications")
        deletions = params.field(body, "deletions", list, [])
        if not all(isinstance(d, str) for d in deletions):
            raise InvalidRequest("deletions must be a list of variable names")
    else:
        values, deletions = from_typed_map(body), []
    engine = params.engine_of(request)
    await params.call(_modify, engine, request.path_params["id"], values, deletions)
    return no_content()


async def put_variable(request: Request) -> Response:
    body = await read_json(request, required=True)
    name = request.path_params["name"]
    value = from_typed(name, body)
    engine = params.engine_of(request)
    await params.call(_modify, engine, request.path_params["id"], {name: value}, [])
    return no_content()


async def delete_variable(request: Request) -> Response:
    engine = params.engine_of(request)
    name = request.path_params["name"]
    await params.call(_modify, engine, request.path_params["id"], {}, [name])
    return no_content()


def _correlate(request: Request, body: Mapping[str, Any]) -> list[tuple[ProcessInstance, bool]]:
    """Each instance the message reached, with whether it was waiting (False: started)."""
    engine = params.engine_of(request)
    name = params.required(body, "messageName", str)
    for unsupported in ("localCorrelationKeys", "tenantId"):
        if body.get(unsupported):
            raise InvalidRequest(f"{unsupported} is not supported by Spillway's /message")
    correlation = from_typed_map(body.get("correlationKeys"), "correlationKeys")
    values = from_typed_map(body.get("processVariables"), "processVariables")
    values.update(from_typed_map(body.get("processVariablesLocal"), "processVariablesLocal"))
    business_key = params.field(body, "businessKey", str)
    instance_id = params.field(body, "processInstanceId", str)
    waiting = {s["instance_id"] for s in engine.store.subscribers("message", name)}
    if params.field(body, "all", bool, False):
        reached = engine.correlate_message_all(
            name, values, correlation, business_key, instance_id=instance_id
        )
    else:
        reached = [
            engine.correlate_message(
                name, values, correlation, business_key, instance_id=instance_id
            )
        ]
    return [(inst, inst.id in waiting) for inst in reached]


def _result(
    request: Request, inst: ProcessInstance, delivered: bool, with_variables: bool
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "resultType": "Execution" if delivered else "ProcessDefinition",
        "execution": (
            {"id": inst.id, "processInstanceId": inst.id, "ended": False, "tenantId": None}
            if delivered
            else None
        ),
        "processInstance": None if delivered else instance_dto(request, inst),
    }
    if with_variables:
        result["variables"] = to_typed_map(inst.variables)
    return result


async def message(request: Request) -> Response:
    """``POST /message``: to one instance (or a start), to that ``processInstanceId``, or with
    ``all`` to every match in one transaction; 204, or with ``resultEnabled`` 200 and one
    result per instance reached."""
    body = await read_json(request, required=True)
    reached = await params.call(_correlate, request, body)
    if not params.field(body, "resultEnabled", bool, False):
        return no_content()
    with_variables = bool(params.field(body, "variablesInResultEnabled", bool, False))
    return json_response(
        [_result(request, inst, delivered, with_variables) for inst, delivered in reached]
    )


def routes() -> list[BaseRoute]:
    one = "/process-instance/{id}"
    return [
        Route("/process-definition/key/{key}/start", start, methods=["POST"]),
        Route("/process-definition/{id}/start", start, methods=["POST"]),
        Route("/process-instance", list_instances, methods=["GET"]),
        Route("/process-instance/count", count_instances, methods=["GET"]),
        Route(one, get_instance, methods=["GET"]),
        Route(one, delete_instance, methods=["DELETE"]),
        Route(f"{one}/variables", get_variables, methods=["GET"]),
        Route(f"{one}/variables", modify_variables, methods=["POST", "PUT"]),
        Route(f"{one}/variables/{{name}}", get_variable, methods=["GET"]),
        Route(f"{one}/variables/{{name}}", put_variable, methods=["PUT"]),
        Route(f"{one}/variables/{{name}}", delete_variable, methods=["DELETE"]),
        Route("/message", message, methods=["POST"]),
    ]
