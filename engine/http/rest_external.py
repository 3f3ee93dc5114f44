"""``/external-task``: fetch-and-lock with long polling, and the reports of external workers.

Shapes, field names and units (milliseconds) are Camunda 7's. Where Spillway differs:

- a duplicate ``complete`` (or failure / BPMN error) of a task that was already completed
  answers 204 and changes nothing; Camunda answers 404. A worker retrying a report after a
  lost response therefore succeeds instead of failing, and the process moves on once;
- a report from the worker holding the lock is applied even after its lock expired, as long as
  nobody else fetched the task meanwhile (Camunda refuses it);
- ``processVariables`` matches, as in Camunda, tasks whose instance has at least one of the
  given variables with the given value (the pairs are alternatives); values are compared as
  JSON scalars (strings, numbers, booleans, null), others are refused with 400;
  ``processDefinitionVersionTag`` matches the ``camunda:versionTag`` of the task's
  definition; ``tenantIdIn`` matches nothing (there are no tenants) and ``sorting`` is
  accepted: tasks come longest-due first (or by priority).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.core.errors import EngineError
from engine.core.values import ExternalTask
from engine.engine import ProcessEngine
from engine.http import params
from engine.http.dates import format_date
from engine.http.errors import InvalidRequest, json_response, no_content
from engine.http.limits import read_json
from engine.http.longpoll import MAX_ASYNC_RESPONSE_TIMEOUT, LongPollHub
from engine.http.task_index import TaskIndex
from engine.http.variables import from_typed_map, to_typed_map

MAX_TASKS = 1000


def version_tag(engine: ProcessEngine, definition_id: str | None) -> str | None:
    """The ``camunda:versionTag`` of a definition (None without one, or if it is gone)."""
    if definition_id is None:
        return None
    definition = engine.commands.definition(definition_id)
    if definition is None:
        return None
    try:
        return engine.commands.model(definition).version_tag
    except EngineError:
        return None


def task_dto(
    task: ExternalTask, *, suspended: bool = False, tag: str | None = None
) -> dict[str, Any]:
    return {
        "activityId": task.activity_id,
        "activityInstanceId": f"{task.activity_id}:{task.id}",
        "errorMessage": task.error_message,
        "errorDetails": task.error_details,
        "executionId": task.id,
        "id": task.id,
        "lockExpirationTime": format_date(task.lock_expires_at),
        "createTime": format_date(task.created_at),
        "processDefinitionId": task.definition_id,
        "processDefinitionKey": task.process_key,
        "processDefinitionVersionTag": tag,
        "processInstanceId": task.instance_id,
        "retries": task.retries,
        "suspended": suspended,
        "workerId": task.worker_id,
        "topicName": task.topic,
        "tenantId": None,
        "priority": task.priority,
        "businessKey": task.business_key,
    }


def locked_dto(engine: ProcessEngine, task: ExternalTask, extension: bool) -> dict[str, Any]:
    out = task_dto(task, tag=version_tag(engine, task.definition_id))
    out.pop("suspended")
    out["variables"] = to_typed_map(task.variables)
    properties: Mapping[str, str] = {}
    if extension:
        properties = engine.external_tasks.context(task).properties
    out["extensionProperties"] = dict(properties)
    return out


class FetchRequest:
    """A fetchAndLock body, read and checked."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.worker_id: str = params.required(body, "workerId", str)
        self.max_tasks: int = params.required(body, "maxTasks", int)
        if not 0 <= self.max_tasks <= MAX_TASKS:
            raise InvalidRequest(f"maxTasks must be between 0 and {MAX_TASKS}")
        self.use_priority: bool = params.field(body, "usePriority", bool, False)
        timeout = params.field(body, "asyncResponseTimeout", (int, float), 0)
        if not 0 <= timeout <= MAX_ASYNC_RESPONSE_TIMEOUT:
            raise InvalidRequest(
                "asyncResponseTimeout must be between 0 and "
                f"{MAX_ASYNC_RESPONSE_TIMEOUT} milliseconds, got {timeout!r}"
            )
        self.timeout = float(timeout) / 1000.0
        params.field(body, "sorting", list)
        topics = params.field(body, "topics", list, [])
        self.topics: list[dict[str, Any]] = []
        self.extension: set[str] = set()
        for item in topics:
            topic = self._topic(item)
            if topic is not None:
                self.topics.append(topic)

    def _topic(self, item: object) -> dict[str, Any] | None:
        if not isinstance(item, Mapping):
            raise InvalidRequest("each of topics must be an object")
        name = params.required(item, "topicName", str)
        lock = params.millis(item, "lockDuration")
        if lock is None or lock <= 0:
            raise InvalidRequest(f"topic '{name}': lockDuration (milliseconds, > 0) is required")
        wanted = params.field(item, "processVariables", dict)
        tag_filter = params.field(item, "processDefinitionVersionTag", str)
        tenants = params.field(item, "tenantIdIn", list)
        if tenants:
            return None  # no task has a tenant
        names = params.field(item, "variables", list)
        if names is not None and not all(isinstance(n, str) for n in names):
            raise InvalidRequest(f"topic '{name}': variables must be a list of names")
        for flag in ("localVariables", "deserializeValues", "withoutTenantId"):
            params.field(item, flag, bool)
        if params.field(item, "includeExtensionProperties", bool, False):
            self.extension.add(name)
        topic: dict[str, Any] = {"topic": name, "lock_duration": lock, "variables": names}
        business_key = params.field(item, "businessKey", str)
        if business_key is not None:
            topic["business_key"] = business_key
        keys = _one_and_many(item, "processDefinitionKey", "processDefinitionKeyIn")
        if keys is not None:
            topic["process_key"] = keys
        ids = _one_and_many(item, "processDefinitionId", "processDefinitionIdIn")
        if ids is not None:
            topic["definition_id"] = ids
        if wanted:
            for var, value in wanted.items():
                if value is not None and not isinstance(value, str | int | float | bool):
                    raise InvalidRequest(
                        f"topic '{name}': processVariables.{var} must be a string, number, "
                        "boolean or null (the filter compares values)"
                    )
            topic["process_variables"] = wanted
        if tag_filter is not None:
            topic["version_tag"] = tag_filter
        return topic


def _one_and_many(item: Mapping[str, Any], one: str, many: str) -> list[str] | None:
    single = params.field(item, one, str)
    several = params.field(item, many, list)
    if several is not None and not all(isinstance(v, str) for v in several):
        raise InvalidRequest(f"{many} must be a list of strings")
    if single is None and several is None:
        return None
    chosen = set(several or [])
    if single is not None:
        chosen = {single} if several is None else chosen & {single}
    return sorted(chosen)


def _fetch(engine: ProcessEngine, request: FetchRequest, index: TaskIndex) -> list[dict[str, Any]]:
    if not request.topics or request.max_tasks == 0:
        return []
    tasks = engine.external_tasks.fetch_and_lock(
        request.worker_id,
        request.topics,
        max_tasks=request.max_tasks,
        use_priority=request.use_priority,
    )
    index.remember(tasks)
    return [locked_dto(engine, t, t.topic in request.extension) for t in tasks]


async def fetch_and_lock(request: Request) -> Response:
    body = await read_json(request, required=True)
    fetch = FetchRequest(body)
    engine = params.engine_of(request)
    hub: LongPollHub = request.app.state.hub
    hub.ensure_started()
    deadline = time.monotonic() + fetch.timeout
    while True:
        ticket = hub.ticket()
        found = await params.call(_fetch, engine, fetch, request.app.state.task_index)
        remaining = deadline - time.monotonic()
        if found or remaining <= 0 or hub.closed or not fetch.topics:
            return json_response(found)
        await hub.wait(ticket, remaining)
        if hub.closed or await request.is_disconnected():
            return json_response([])


def _worker(body: Mapping[str, Any]) -> str:
    worker: str = params.required(body, "workerId", str)
    return worker


async def complete(request: Request) -> Response:
    task_id = request.path_params["id"]
    body = await read_json(request, required=True)
    worker = _worker(body)
    values = from_typed_map(body.get("variables"))
    values.update(from_typed_map(body.get("localVariables"), "localVariables"))
    engine = params.engine_of(request)
    index: TaskIndex = request.app.state.task_index
    await params.call(_complete, engine, index.take(task_id), task_id, worker, values)
    return no_content()


def _complete(
    engine: ProcessEngine,
    fetched: ExternalTask | None,
    task_id: str,
    worker: str,
    values: dict[str, Any],
) -> None:
    """Complete through the engine; a task this server fetched goes straight to its instance's
    report queue (``report_all`` with the fetched task), saving the read of its row."""
    if fetched is None:
        engine.external_tasks.complete(task_id, worker, values)
        return
    (outcome,) = engine.external_tasks.report_all([("complete", fetched, worker, values)])
    if isinstance(outcome, BaseException):
        raise outcome


async def failure(request: Request) -> Response:
    task_id = request.path_params["id"]
    body = await read_json(request, required=True)
    worker = _worker(body)
    message = params.field(body, "errorMessage", str, "failed")
    details = body.get("errorDetails")
    if details is not None and not isinstance(details, str):
        details = json.dumps(details)
    retries = params.field(body, "retries", int)
    if retries is not None and retries < 0:
        raise InvalidRequest(f"retries must be >= 0, got {retries}")
    timeout = params.millis(body, "retryTimeout")
    engine = params.engine_of(request)
    await params.call(
        engine.external_tasks.handle_failure,
        task_id,
        worker,
        message,
        details or None,
        retries,
        timeout,
    )
    return no_content()


async def bpmn_error(request: Request) -> Response:
    task_id = request.path_params["id"]
    body = await read_json(request, required=True)
    worker = _worker(body)
    code = params.required(body, "errorCode", str)
    message = params.field(body, "errorMessage", str, "")
    values = from_typed_map(body.get("variables"))
    engine = params.engine_of(request)
    await params.call(
        engine.external_tasks.handle_bpmn_error, task_id, worker, code, message, values
    )
    return no_content()


async def extend_lock(request: Request) -> Response:
    task_id = request.path_params["id"]
    body = await read_json(request, required=True)
    worker = _worker(body)
    duration = params.millis(body, "newDuration")
    if not duration:
        raise InvalidRequest("newDuration (milliseconds, > 0) is required")
    engine = params.engine_of(request)
    await params.call(engine.external_tasks.extend_lock, task_id, worker, duration)
    return no_content()


async def lock(request: Request) -> Response:
    task_id = request.path_params["id"]
    body = await read_json(request, required=True)
    worker = _worker(body)
    duration = params.millis(body, "lockDuration")
    if not duration:
        raise InvalidRequest("lockDuration (milliseconds, > 0) is required")
    engine = params.engine_of(request)
    await params.call(engine.external_tasks.lock, task_id, worker, duration)
    return no_content()


async def unlock(request: Request) -> Response:
    engine = params.engine_of(request)
    await params.call(engine.external_tasks.unlock, request.path_params["id"])
    return no_content()


def _matches(task: ExternalTask, request: Request, now: Any) -> bool:
    q = params.query_str
    locked = task.worker_id is not None and (
        task.lock_expires_at is not None and task.lock_expires_at > now
    )
    checks: Sequence[tuple[Any, Any]] = (
        (q(request, "externalTaskId"), task.id),
        (q(request, "workerId"), task.worker_id),
        (q(request, "activityId"), task.activity_id),
        (q(request, "processDefinitionId"), task.definition_id),
        (q(request, "processDefinitionKey"), task.process_key),
    )
    if any(want is not None and want != have for want, have in checks):
        return False
    ids = params.query_list(request, "externalTaskIdIn")
    if ids is not None and task.id not in ids:
        return False
    if params.query_bool(request, "locked") and not locked:
        return False
    if params.query_bool(request, "notLocked") and locked:
        return False
    if params.query_bool(request, "withRetriesLeft") and task.state == "failed":
        return False
    return not (params.query_bool(request, "noRetriesLeft") and task.state != "failed")


def _list(engine: ProcessEngine, request: Request) -> list[dict[str, Any]]:
    tasks = engine.external_tasks.list(
        topic=params.query_str(request, "topicName"),
        instance_id=params.query_str(request, "processInstanceId"),
    )
    now = engine.now()
    return params.page(
        request,
        [
            task_dto(t, tag=version_tag(engine, t.definition_id))
            for t in tasks
            if _matches(t, request, now)
        ],
    )


async def list_tasks(request: Request) -> Response:
    engine = params.engine_of(request)
    return json_response(await params.call(_list, engine, request))


async def count_tasks(request: Request) -> Response:
    engine = params.engine_of(request)
    return json_response({"count": len(await params.call(_list, engine, request))})


async def get_task(request: Request) -> Response:
    engine = params.engine_of(request)
    task = await params.call(engine.external_tasks.get, request.path_params["id"])
    return json_response(task_dto(task, tag=version_tag(engine, task.definition_id)))


def routes() -> list[BaseRoute]:
    one = "/external-task/{id}"
    return [
        Route("/external-task/fetchAndLock", fetch_and_lock, methods=["POST"]),
        Route("/external-task", list_tasks, methods=["GET"]),
        Route("/external-task/count", count_tasks, methods=["GET"]),
        Route(one, get_task, methods=["GET"]),
        Route(f"{one}/complete", complete, methods=["POST"]),
        Route(f"{one}/failure", failure, methods=["POST"]),
        Route(f"{one}/bpmnError", bpmn_error, methods=["POST"]),
        Route(f"{one}/extendLock", extend_lock, methods=["POST"]),
        Route(f"{one}/lock", lock, methods=["POST"]),
        Route(f"{one}/unlock", unlock, methods=["POST"]),
    ]
