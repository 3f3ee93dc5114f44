"""The OpenAPI 3.0 document of what Spillway's REST API implements (served at
``/engine-rest/openapi.json``). Field names and shapes follow Camunda 7's own OpenAPI document
(engine-rest-openapi); only implemented operations and fields are listed. The test suite runs
schemathesis over it against the app.
"""

from __future__ import annotations

from engine.http.openapi_schemas import SCHEMAS, VARIABLES, S, _list, _ref
from engine.http.rest_deploy import CAMUNDA_VERSION

ERROR = {
    "description": "Camunda error body",
    "content": {"application/json": {"schema": _ref("ExceptionDto")}},
}


def _json(schema: S, description: str = "OK") -> S:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: S | None,
    *,
    params: list[S] | None = None,
    body: str | None = None,
    body_required: bool = True,
    errors: tuple[int, ...] = (400,),
    status: str = "200",
) -> S:
    responses: S = {status: _json(ok) if ok is not None else {"description": "No Content"}}
    for code in (*errors, 401, 413, 500):
        responses[str(code)] = ERROR
    op: S = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return op


def _path(name: str) -> S:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _q(name: str, kind: str = "string") -> S:
    schema: S = {"type": kind}
    if kind == "integer":
        schema["minimum"] = 0
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGING = [_q("firstResult", "integer"), _q("maxResults", "integer")]
NO_CONTENT = None


def _paths() -> S:
    pid = [_path("id")]
    key = [_path("key")]
    deploy_form = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "deployment-name": {"type": "string"},
                        "deployment-source": {"type": "string"},
                        "enable-duplicate-filtering": {"type": "boolean"},
                        "deploy-changed-only": {"type": "boolean"},
                        "data": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
    create = _op(
        "Deploy BPMN files (multipart, one part per file)", _ref("DeploymentWithDefinitionsDto")
    )
    create["requestBody"] = deploy_form
    ext_filters = [
        _q("externalTaskId"),
        _q("topicName"),
        _q("workerId"),
        _q("locked", "boolean"),
        _q("notLocked", "boolean"),
        _q("withRetriesLeft", "boolean"),
        _q("noRetriesLeft", "boolean"),
        _q("activityId"),
        _q("processInstanceId"),
        _q("processDefinitionId"),
        _q("processDefinitionKey"),
        *PAGING,
    ]
    def_filters = [
        _q("key"),
        _q("processDefinitionId"),
        _q("deploymentId"),
        _q("latestVersion", "boolean"),
        {**_q("version", "integer"), "schema": {"type": "integer", "minimum": 1}},
        *PAGING,
    ]
    inst_filters = [
        _q("processDefinitionKey"),
        _q("processDefinitionId"),
        _q("businessKey"),
        _q("processInstanceIds"),
        _q("withIncident", "boolean"),
        _q("active", "boolean"),
        _q("suspended", "boolean"),
        *PAGING,
    ]
    task_filters = [
        _q("processInstanceId"),
        _q("assignee"),
        _q("candidateUser"),
        _q("candidateGroup"),
        _q("processDefinitionKey"),
        _q("taskDefinitionKey"),
        _q("taskId"),
        *PAGING,
    ]
    job_filters = [
        _q("processInstanceId"),
        _q("jobId"),
        _q("jobIds"),
        _q("activityId"),
        _q("withRetriesLeft", "boolean"),
        _q("noRetriesLeft", "boolean"),
        _q("withException", "boolean"),
        *PAGING,
    ]
    incident_filters = [
        _q("processInstanceId"),
        _q("incidentId"),
        _q("incidentType"),
        _q("activityId"),
        *PAGING,
    ]
    count = _ref("CountResultDto")
    return {
        "/version": {"get": _op("The REST API version", _ref("VersionDto"))},
        "/deployment": {
            "get": _op(
                "Deployments",
                _list(_ref("DeploymentDto")),
                params=[_q("id"), _q("name"), _q("source"), *PAGING],
            )
        },
        "/deployment/count": {
            "get": _op("Count deployments", count, params=[_q("id"), _q("name"), _q("source")])
        },
        "/deployment/create": {"post": create},
        "/deployment/{id}": {
            "get": _op("One deployment", _ref("DeploymentDto"), params=pid, errors=(404,))
        },
        "/process-definition": {
            "get": _op("Definitions", _list(_ref("ProcessDefinitionDto")), params=def_filters)
        },
        "/process-definition/count": {
            "get": _op("Count definitions", count, params=def_filters[:-2])
        },
        "/process-definition/key/{key}": {
            "get": _op(
                "Latest version of a key", _ref("ProcessDefinitionDto"), params=key, errors=(404,)
            )
        },
        "/process-definition/key/{key}/xml": {
            "get": _op("BPMN XML", _ref("ProcessDefinitionDiagramDto"), params=key, errors=(404,))
        },
        "/process-definition/{id}": {
            "get": _op("One definition", _ref("ProcessDefinitionDto"), params=pid, errors=(404,))
        },
        "/process-definition/{id}/xml": {
            "get": _op("BPMN XML", _ref("ProcessDefinitionDiagramDto"), params=pid, errors=(404,))
        },
        "/process-definition/key/{key}/start": {
            "post": _op(
                "Start the latest version",
                _ref("ProcessInstanceWithVariablesDto"),
                params=key,
                body="StartProcessInstanceDto",
                body_required=False,
                errors=(400, 404),
            )
        },
        "/process-definition/{id}/start": {
            "post": _op(
                "Start this version",
                _ref("ProcessInstanceWithVariablesDto"),
                params=pid,
                body="StartProcessInstanceDto",
                body_required=False,
                errors=(400, 404),
            )
        },
        "/process-instance": {
            "get": _op("Running instances", _list(_ref("ProcessInstanceDto")), params=inst_filters)
        },
        "/process-instance/count": {
            "get": _op("Count running instances", count, params=inst_filters[:-2])
        },
        "/process-instance/{id}": {
            "get": _op("One instance", _ref("ProcessInstanceDto"), params=pid, errors=(404,)),
            "delete": _op(
                "Cancel an instance",
                NO_CONTENT,
                params=[*pid, _q("deleteReason")],
                errors=(404, 501),
                status="204",
            ),
        },
        "/process-instance/{id}/variables": {
            "get": _op("Variables", VARIABLES, params=pid, errors=(404,)),
            "post": _op(
                "Modify variables: modifications, then deletions, in one transaction",
                NO_CONTENT,
                params=pid,
                body="PatchVariablesDto",
                errors=(400, 404, 501),
                status="204",
            ),
        },
        "/process-instance/{id}/variables/{name}": {
            "get": _op(
                "One variable",
                _ref("VariableValueDto"),
                params=[*pid, _path("name")],
                errors=(404,),
            ),
            "put": _op(
                "Set one variable",
                NO_CONTENT,
                params=[*pid, _path("name")],
                body="VariableValueDto",
                errors=(400, 404, 501),
                status="204",
            ),
            "delete": _op(
                "Remove one variable",
                NO_CONTENT,
                params=[*pid, _path("name")],
                errors=(400, 404, 501),
                status="204",
            ),
        },
        "/message": {
            "post": {
                **_op(
                    "Correlate a message",
                    _list(_ref("MessageCorrelationResultWithVariableDto")),
                    body="CorrelationMessageDto",
                ),
                "responses": {
                    "200": _json(_list(_ref("MessageCorrelationResultWithVariableDto"))),
                    "204": {"description": "No Content"},
                    **{str(c): ERROR for c in (400, 401, 413, 500)},
                },
            }
        },
        "/task": {
            "get": _op(
                "Open user tasks", _list(_ref("TaskDto")), params=task_filters, errors=(400, 501)
            )
        },
        "/task/count": {
            "get": _op("Count user tasks", count, params=task_filters[:-2], errors=(400, 501))
        },
        "/task/{id}": {"get": _op("One task", _ref("TaskDto"), params=pid, errors=(404, 501))},
        "/task/{id}/claim": {
            "post": _op(
                "Claim",
                NO_CONTENT,
                params=pid,
                body="UserIdDto",
                errors=(400, 404, 501),
                status="204",
            )
        },
        "/task/{id}/unclaim": {
            "post": _op("Unclaim", NO_CONTENT, params=pid, errors=(400, 404, 501), status="204")
        },
        "/task/{id}/assignee": {
            "post": _op(
                "Set the assignee",
                NO_CONTENT,
                params=pid,
                body="UserIdDto",
                errors=(400, 404, 501),
                status="204",
            )
        },
        "/task/{id}/complete": {
            "post": {
                **_op(
                    "Complete",
                    VARIABLES,
                    params=pid,
                    body="CompleteTaskDto",
                    body_required=False,
                    errors=(400, 404, 501),
                ),
                "responses": {
                    "200": _json(VARIABLES),
                    "204": {"description": "No Content"},
                    **{str(c): ERROR for c in (400, 401, 404, 413, 500, 501)},
                },
            }
        },
        "/external-task/fetchAndLock": {
            "post": _op(
                "Fetch and lock, with long polling",
                _list(_ref("LockedExternalTaskDto")),
                body="FetchExternalTasksDto",
            )
        },
        "/external-task": {
            "get": _op("External tasks", _list(_ref("ExternalTaskDto")), params=ext_filters)
        },
        "/external-task/count": {
            "get": _op("Count external tasks", count, params=ext_filters[:-2])
        },
        "/external-task/{id}": {
            "get": _op("One external task", _ref("ExternalTaskDto"), params=pid, errors=(404,))
        },
        **{
            f"/external-task/{{id}}/{name}": {
                "post": _op(
                    summary,
                    NO_CONTENT,
                    params=pid,
                    body=body,
                    errors=(400, 404),
                    status="204",
                )
            }
            for name, summary, body in (
                ("complete", "Complete", "CompleteExternalTaskDto"),
                ("failure", "Report a failure", "ExternalTaskFailureDto"),
                ("bpmnError", "Throw a BPMN error", "ExternalTaskBpmnError"),
                ("extendLock", "Extend the lock", "ExtendLockOnExternalTaskDto"),
                ("lock", "Lock by id", "LockExternalTaskDto"),
            )
        },
        "/external-task/{id}/unlock": {
            "post": _op("Unlock", NO_CONTENT, params=pid, errors=(400, 404), status="204")
        },
        "/job": {"get": _op("Jobs", _list(_ref("JobDto")), params=job_filters)},
        "/job/count": {"get": _op("Count jobs", count, params=job_filters[:-2])},
        "/job/{id}": {"get": _op("One job", _ref("JobDto"), params=pid, errors=(404,))},
        "/job/{id}/retries": {
            "put": _op(
                "Set retries (resolves the incident)",
                NO_CONTENT,
                params=pid,
                body="RetriesDto",
                errors=(400, 404),
                status="204",
            )
        },
        "/job/{id}/execute": {
            "post": _op("Execute now", NO_CONTENT, params=pid, errors=(400, 404), status="204")
        },
        "/incident": {
            "get": _op("Open incidents", _list(_ref("IncidentDto")), params=incident_filters)
        },
        "/incident/count": {
            "get": _op("Count open incidents", count, params=incident_filters[:-2])
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json({"type": "object"})}}
        },
    }


def document(prefix: str = "/engine-rest") -> S:
    return {
        "openapi": "3.0.2",
        "info": {
            "title": "Spillway: Camunda 7 REST API (implemented subset)",
            "version": CAMUNDA_VERSION,
            "description": "See docs/http.md for what each endpoint supports.",
        },
        "servers": [{"url": prefix}],
        "security": [{"basic": []}, {"bearer": []}, {}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "paths": _paths(),
    }
