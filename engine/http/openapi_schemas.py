"""The component schemas of the OpenAPI document (``engine.http.openapi``): Camunda 7's DTOs
with the fields Spillway fills, and the small helpers that write them."""

from __future__ import annotations

from typing import Any

S = dict[str, Any]


def _str(nullable: bool = True) -> S:
    return {"type": "string", "nullable": True} if nullable else {"type": "string"}


def _int(nullable: bool = True) -> S:
    return {"type": "integer", "nullable": True} if nullable else {"type": "integer"}


def _bool(nullable: bool = False) -> S:
    return {"type": "boolean", "nullable": True} if nullable else {"type": "boolean"}


def _date() -> S:
    return {"type": "string", "nullable": True, "description": "yyyy-MM-dd'T'HH:mm:ss.SSSZ"}


def _ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: S, required: list[str] | None = None) -> S:
    out: S = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _list(item: S) -> S:
    return {"type": "array", "items": item}


VARIABLES: S = {
    "type": "object",
    "nullable": True,
    "additionalProperties": _ref("VariableValueDto"),
}

SCHEMAS: S = {
    "ExceptionDto": _obj(
        {"type": _str(False), "message": _str(False), "code": _int()}, ["type", "message"]
    ),
    "VariableValueDto": {
        "type": "object",
        "properties": {
            "value": {"nullable": True},
            "type": {"type": "string", "nullable": True},
            "valueInfo": {"type": "object", "nullable": True},
        },
    },
    "CountResultDto": _obj({"count": _int(False)}, ["count"]),
    "LinkDto": _obj({"method": _str(), "href": _str(), "rel": _str()}),
    "VersionDto": _obj({"version": _str(False)}, ["version"]),
    "DeploymentDto": _obj(
        {
            "links": _list(_ref("LinkDto")),
            "id": _str(False),
            "name": _str(),
            "source": _str(),
            "deploymentTime": _date(),
            "tenantId": _str(),
        },
        ["id"],
    ),
    "DeploymentWithDefinitionsDto": {
        "allOf": [
            _ref("DeploymentDto"),
            _obj(
                {
                    "deployedProcessDefinitions": {
                        "type": "object",
                        "nullable": True,
                        "additionalProperties": _ref("ProcessDefinitionDto"),
                    },
                    "deployedCaseDefinitions": {"type": "object", "nullable": True},
                    "deployedDecisionDefinitions": {"type": "object", "nullable": True},
                    "deployedDecisionRequirementsDefinitions": {
                        "type": "object",
                        "nullable": True,
                    },
                }
            ),
        ]
    },
    "ProcessDefinitionDto": _obj(
        {
            "id": _str(False),
            "key": _str(False),
            "category": _str(),
            "description": _str(),
            "name": _str(),
            "version": _int(False),
            "resource": _str(),
            "deploymentId": _str(),
            "diagram": _str(),
            "suspended": _bool(),
            "tenantId": _str(),
            "versionTag": _str(),
            "historyTimeToLive": _int(),
            "startableInTasklist": _bool(),
        },
        ["id", "key", "version"],
    ),
    "ProcessDefinitionDiagramDto": _obj({"id": _str(False), "bpmn20Xml": _str(False)}),
    "StartProcessInstanceDto": _obj(
        {
            "variables": VARIABLES,
            "businessKey": _str(),
            "caseInstanceId": _str(),
            "skipCustomListeners": _bool(True),
            "skipIoMappings": _bool(True),
            "withVariablesInReturn": _bool(True),
        }
    ),
    "ProcessInstanceDto": _obj(
        {
            "links": _list(_ref("LinkDto")),
            "id": _str(False),
            "definitionId": _str(),
            "definitionKey": _str(),
            "businessKey": _str(),
            "caseInstanceId": _str(),
            "ended": _bool(),
            "suspended": _bool(),
            "tenantId": _str(),
        },
        ["id", "ended", "suspended"],
    ),
    "ProcessInstanceWithVariablesDto": {
        "allOf": [_ref("ProcessInstanceDto"), _obj({"variables": VARIABLES})]
    },
    "PatchVariablesDto": _obj(
        {"modifications": VARIABLES, "deletions": {**_list(_str(False)), "nullable": True}}
    ),
    "CorrelationMessageDto": _obj(
        {
            "messageName": _str(False),
            "businessKey": _str(),
            "correlationKeys": VARIABLES,
            "processVariables": VARIABLES,
            "processVariablesLocal": VARIABLES,
            "processInstanceId": _str(),
            "all": _bool(True),
            "resultEnabled": _bool(True),
            "variablesInResultEnabled": _bool(True),
        },
        ["messageName"],
    ),
    "MessageCorrelationResultWithVariableDto": _obj(
        {
            "resultType": {"type": "string", "enum": ["Execution", "ProcessDefinition"]},
            "execution": {"type": "object", "nullable": True},
            "processInstance": {**_ref("ProcessInstanceDto"), "nullable": True},
            "variables": VARIABLES,
        }
    ),
    "TaskDto": _obj(
        {
            "id": _str(False),
            "name": _str(),
            "assignee": _str(),
            "owner": _str(),
            "created": _date(),
            "lastUpdated": _date(),
            "due": _date(),
            "followUp": _date(),
            "delegationState": _str(),
            "description": _str(),
            "executionId": _str(),
            "parentTaskId": _str(),
            "priority": _int(),
            "processDefinitionId": _str(),
            "processInstanceId": _str(),
            "caseExecutionId": _str(),
            "caseDefinitionId": _str(),
            "caseInstanceId": _str(),
            "taskDefinitionKey": _str(),
            "suspended": _bool(),
            "formKey": _str(),
            "camundaFormRef": {"type": "object", "nullable": True},
            "tenantId": _str(),
        },
        ["id"],
    ),
    "UserIdDto": _obj({"userId": _str()}),
    "CompleteTaskDto": _obj({"variables": VARIABLES, "withVariablesInReturn": _bool(True)}),
    "FetchExternalTaskTopicDto": _obj(
        {
            "topicName": _str(False),
            "lockDuration": {"type": "integer", "minimum": 1},
            "variables": {**_list(_str(False)), "nullable": True},
            "localVariables": _bool(True),
            "businessKey": _str(),
            "processDefinitionId": _str(),
            "processDefinitionIdIn": {**_list(_str(False)), "nullable": True},
            "processDefinitionKey": _str(),
            "processDefinitionKeyIn": {**_list(_str(False)), "nullable": True},
            "withoutTenantId": _bool(True),
            "tenantIdIn": {**_list(_str(False)), "nullable": True},
            "processVariables": {
                "type": "object",
                "nullable": True,
                "additionalProperties": {
                    "nullable": True,
                    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
                },
            },
            "processDefinitionVersionTag": _str(),
            "deserializeValues": _bool(True),
            "includeExtensionProperties": _bool(True),
        },
        ["topicName", "lockDuration"],
    ),
    "FetchExternalTasksDto": _obj(
        {
            "workerId": {"type": "string", "minLength": 1},
            "maxTasks": {"type": "integer", "minimum": 0, "maximum": 1000},
            "usePriority": _bool(True),
            "asyncResponseTimeout": {
                "type": "integer",
                "nullable": True,
                "minimum": 0,
                "maximum": 1800000,
            },
            "topics": {**_list(_ref("FetchExternalTaskTopicDto")), "nullable": True},
            "sorting": {"type": "array", "nullable": True, "items": {"type": "object"}},
        },
        ["workerId", "maxTasks"],
    ),
    "ExternalTaskDto": _obj(
        {
            "activityId": _str(),
            "activityInstanceId": _str(),
            "errorMessage": _str(),
            "errorDetails": _str(),
            "executionId": _str(),
            "id": _str(False),
            "lockExpirationTime": _date(),
            "createTime": _date(),
            "processDefinitionId": _str(),
            "processDefinitionKey": _str(),
            "processDefinitionVersionTag": _str(),
            "processInstanceId": _str(),
            "retries": _int(),
            "suspended": _bool(),
            "workerId": _str(),
            "topicName": _str(),
            "tenantId": _str(),
            "priority": _int(),
            "businessKey": _str(),
        },
        ["id"],
    ),
    "LockedExternalTaskDto": {
        "allOf": [
            _ref("ExternalTaskDto"),
            _obj(
                {
                    "variables": VARIABLES,
                    "extensionProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                    },
                }
            ),
        ]
    },
    "CompleteExternalTaskDto": _obj(
        {"workerId": _str(False), "variables": VARIABLES, "localVariables": VARIABLES},
        ["workerId"],
    ),
    "ExternalTaskFailureDto": _obj(
        {
            "workerId": _str(False),
            "errorMessage": _str(),
            "errorDetails": _str(),
            "retries": {"type": "integer", "nullable": True, "minimum": 0},
            "retryTimeout": {"type": "integer", "nullable": True, "minimum": 0},
        },
        ["workerId"],
    ),
    "ExternalTaskBpmnError": _obj(
        {
            "workerId": _str(False),
            "errorCode": {"type": "string", "minLength": 1},
            "errorMessage": _str(),
            "variables": VARIABLES,
        },
        ["workerId", "errorCode"],
    ),
    "ExtendLockOnExternalTaskDto": _obj(
        {"workerId": _str(False), "newDuration": {"type": "integer", "minimum": 1}},
        ["workerId", "newDuration"],
    ),
    "LockExternalTaskDto": _obj(
        {"workerId": _str(False), "lockDuration": {"type": "integer", "minimum": 1}},
        ["workerId", "lockDuration"],
    ),
    "JobDto": _obj(
        {
            "id": _str(False),
            "jobDefinitionId": _str(),
            "processInstanceId": _str(),
            "processDefinitionId": _str(),
            "processDefinitionKey": _str(),
            "executionId": _str(),
            "exceptionMessage": _str(),
            "failedActivityId": _str(),
            "retries": _int(),
            "dueDate": _date(),
            "suspended": _bool(),
            "priority": _int(),
            "tenantId": _str(),
            "createTime": _date(),
            "batchId": _str(),
        },
        ["id"],
    ),
    "RetriesDto": _obj({"retries": {"type": "integer", "minimum": 1}}, ["retries"]),
    "IncidentDto": _obj(
        {
            "id": _str(False),
            "processDefinitionId": _str(),
            "processInstanceId": _str(),
            "executionId": _str(),
            "incidentTimestamp": _date(),
            "incidentType": _str(),
            "activityId": _str(),
            "failedActivityId": _str(),
            "causeIncidentId": _str(),
            "rootCauseIncidentId": _str(),
            "configuration": _str(),
            "tenantId": _str(),
            "incidentMessage": _str(),
            "jobDefinitionId": _str(),
            "annotation": _str(),
        },
        ["id"],
    ),
}
