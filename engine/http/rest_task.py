"""``/task``: user tasks (list, claim, unclaim, assignee, complete) over the operator API's
``eng.tasks()`` / ``claim`` / ``unclaim`` / ``set_assignee`` / ``complete_task``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.engine import ProcessEngine
from engine.http import params
from engine.http.dates import format_date
from engine.http.errors import NotFoundError, json_response, no_content
from engine.http.limits import read_json
from engine.http.operate import verb
from engine.http.variables import from_typed_map, to_typed_map


def task_dto(task: Any, definitions: dict[str, str]) -> dict[str, Any]:
    return {
        "id": task.id,
        "name": task.name,
        "assignee": task.assignee,
        "owner": None,
        "created": format_date(task.created_at),
        "lastUpdated": None,
        "due": format_date(task.due_at),
        "followUp": format_date(task.follow_up_at),
        "delegationState": None,
        "description": None,
        "executionId": task.instance_id,
        "parentTaskId": None,
        "priority": task.priority if task.priority is not None else 50,
        "processDefinitionId": definitions.get(task.instance_id),
        "processInstanceId": task.instance_id,
        "caseExecutionId": None,
        "caseDefinitionId": None,
        "caseInstanceId": None,
        "taskDefinitionKey": task.activity_id,
        "suspended": False,
        "formKey": task.form_key,
        "camundaFormRef": None,
        "tenantId": None,
    }


def _definitions(engine: ProcessEngine, tasks: list[Any]) -> dict[str, str]:
    ids = sorted({t.instance_id for t in tasks})
    rows = engine.store.instances(ids=ids) if ids else []
    return {r["id"]: r["definition_id"] for r in rows}


def _tasks(request: Request) -> list[dict[str, Any]]:
    engine = params.engine_of(request)
    q = params.query_str
    found = verb(engine, "tasks")(
        instance_id=q(request, "processInstanceId"),
        assignee=q(request, "assignee"),
        candidate_user=q(request, "candidateUser"),
        candidate_group=q(request, "candidateGroup"),
        process_key=q(request, "processDefinitionKey"),
    )
    key = q(request, "taskDefinitionKey")
    task_id = q(request, "taskId")
    found = [
        t
        for t in found
        if (key is None or t.activity_id == key) and (task_id is None or t.id == task_id)
    ]
    defs = _definitions(engine, found)
    return params.page(request, [task_dto(t, defs) for t in found])


async def list_tasks(request: Request) -> Response:
    return json_response(await params.call(_tasks, request))


async def count_tasks(request: Request) -> Response:
    return json_response({"count": len(await params.call(_tasks, request))})


def find_task(engine: ProcessEngine, task_id: str) -> Any:
    for task in verb(engine, "tasks")():
        if task.id == task_id:
            return task
    raise NotFoundError(f"No task with id {task_id} exists")


def _get(engine: ProcessEngine, task_id: str) -> dict[str, Any]:
    task = find_task(engine, task_id)
    return task_dto(task, _definitions(engine, [task]))


async def get_task(request: Request) -> Response:
    engine = params.engine_of(request)
    return json_response(await params.call(_get, engine, request.path_params["id"]))


def _claim(engine: ProcessEngine, task_id: str, user: str) -> None:
    find_task(engine, task_id)
    verb(engine, "claim")(task_id, user)


async def claim(request: Request) -> Response:
    body = await read_json(request, required=True)
    user = params.required(body, "userId", str)
    engine = params.engine_of(request)
    await params.call(_claim, engine, request.path_params["id"], user)
    return no_content()


def _unclaim(engine: ProcessEngine, task_id: str) -> None:
    find_task(engine, task_id)
    verb(engine, "unclaim")(task_id)


async def unclaim(request: Request) -> Response:
    engine = params.engine_of(request)
    await params.call(_unclaim, engine, request.path_params["id"])
    return no_content()


def _assignee(engine: ProcessEngine, task_id: str, user: str | None) -> None:
    find_task(engine, task_id)
    verb(engine, "set_assignee")(task_id, user)


async def set_assignee(request: Request) -> Response:
    body = await read_json(request, required=True)
    user = params.field(body, "userId", str)
    engine = params.engine_of(request)
    await params.call(_assignee, engine, request.path_params["id"], user)
    return no_content()


def _complete(engine: ProcessEngine, task_id: str, values: dict[str, Any]) -> dict[str, Any]:
    task = find_task(engine, task_id)
    inst = engine.complete_task(task.instance_id, task.activity_id, values)
    return inst.variables


async def complete(request: Request) -> Response:
    body = await read_json(request)
    values = from_typed_map(body.get("variables"))
    engine = params.engine_of(request)
    result = await params.call(_complete, engine, request.path_params["id"], values)
    if params.field(body, "withVariablesInReturn", bool, False):
        return json_response(to_typed_map(result))
    return no_content()


def routes() -> list[BaseRoute]:
    one = "/task/{id}"
    return [
        Route("/task", list_tasks, methods=["GET"]),
        Route("/task/count", count_tasks, methods=["GET"]),
        Route(one, get_task, methods=["GET"]),
        Route(f"{one}/claim", claim, methods=["POST"]),
        Route(f"{one}/unclaim", unclaim, methods=["POST"]),
        Route(f"{one}/assignee", set_assignee, methods=["POST"]),
        Route(f"{one}/complete", complete, methods=["POST"]),
    ]
