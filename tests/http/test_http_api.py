"""The REST API's shapes, status codes and semantics, over HTTP against a real server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import HERE, Served

from engine import ProcessEngine

DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
EXAMPLE = HERE.parent.parent / "processes" / "example_process.bpmn"


def deploy(served: Served, *paths: Path, name: str = "test") -> dict[str, object]:
    files = [("file", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    response = served.client.post(
        "/deployment/create",
        data={
            "deployment-name": name,
            "deployment-source": "Camunda Modeler",
            "enable-duplicate-filtering": "true",
            "deploy-changed-only": "true",
        },
        files=files,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, object] = response.json()
    return body


def start(served: Served, key: str, **body: object) -> dict[str, object]:
    response = served.client.post(f"/process-definition/key/{key}/start", json=body)
    assert response.status_code == 200, response.text
    out: dict[str, object] = response.json()
    return out


def fetch(served: Served, worker: str = "w1", **topic: object) -> list[dict[str, object]]:
    topic.setdefault("topicName", "charge")
    topic.setdefault("lockDuration", 10_000)
    response = served.client.post(
        "/external-task/fetchAndLock",
        json={"workerId": worker, "maxTasks": 10, "topics": [topic]},
    )
    assert response.status_code == 200, response.text
    tasks: list[dict[str, object]] = response.json()
    return tasks


def test_version_and_modeler_deploy_is_idempotent(served: Served) -> None:
    assert served.client.get("/version").json() == {"version": "7.22.0"}
    first = deploy(served, HERE / "payment.bpmn", EXAMPLE, name="both")
    defs = first["deployedProcessDefinitions"]
    assert isinstance(defs, dict)
    assert sorted(d["key"] for d in defs.values()) == ["ExampleProcess", "Payment"]
    assert all(d["version"] == 1 and d["deploymentId"] == first["id"] for d in defs.values())
    assert DATE.match(str(first["deploymentTime"]))
    again = deploy(served, HERE / "payment.bpmn", EXAMPLE, name="both")
    assert again["id"] == first["id"]
    assert again["deployedProcessDefinitions"] is None
    listed = served.client.get("/deployment").json()
    assert [d["id"] for d in listed] == [first["id"]]
    assert first["source"] == "Camunda Modeler" and listed[0]["source"] == "Camunda Modeler"
    one = served.client.get(f"/deployment/{first['id']}").json()
    assert one["source"] == "Camunda Modeler" and one["name"] == "both"
    by_source = served.client.get("/deployment", params={"source": "Camunda Modeler"}).json()
    assert [d["id"] for d in by_source] == [first["id"]]
    assert served.client.get("/deployment/count", params={"source": "curl"}).json() == {"count": 0}
    definitions = served.client.get("/process-definition", params={"key": "Payment"}).json()
    assert [(d["key"], d["version"]) for d in definitions] == [("Payment", 1)]
    xml = served.client.get("/process-definition/key/Payment/xml").json()
    assert "Charge card" in xml["bpmn20Xml"]


def test_a_deployment_without_source_shows_null(served: Served) -> None:
    files = {"a": ("payment.bpmn", (HERE / "payment.bpmn").read_bytes(), "text/xml")}
    created = served.client.post("/deployment/create", files=files).json()
    assert created["source"] is None
    assert served.client.get(f"/deployment/{created['id']}").json()["source"] is None
    by_api = served.engine.deploy(EXAMPLE, deployment_source="ci pipeline")
    assert by_api.source == "ci pipeline"
    shown = served.client.get(f"/deployment/{by_api.id}").json()
    assert shown["source"] == "ci pipeline"


def test_changed_process_gets_next_version_and_start_by_id_keeps_the_old(
    served: Served, tmp_path: Path
) -> None:
    v1 = deploy(served, HERE / "payment.bpmn")
    changed = tmp_path / "payment.bpmn"
    changed.write_text((HERE / "payment.bpmn").read_text().replace("Charge card", "Charge it"))
    v2 = deploy(served, changed)
    (v2_def,) = v2["deployedProcessDefinitions"].values()  # type: ignore[union-attr]
    assert v2_def["version"] == 2
    (v1_id,) = v1["deployedProcessDefinitions"].keys()  # type: ignore[union-attr]
    inst = served.client.post(
        f"/process-definition/{v1_id}/start", json={"variables": {"amount": {"value": 1}}}
    ).json()
    assert inst["definitionId"] == v1_id
    assert start(served, "Payment")["definitionId"] == v2_def["id"]


def test_start_with_typed_variables_and_explicit_nulls(served: Served) -> None:
    deploy(served, HERE / "payment.bpmn")
    out = start(
        served,
        "Payment",
        variables={
            "amount": {"value": 30, "type": "Integer", "valueInfo": {}},
            "big": {"value": "9000000000", "type": "Long"},
            "rate": {"value": 1.5, "type": "Double"},
            "ok": {"value": "true", "type": "boolean"},
            "name": {"value": "Ann", "type": "String"},
            "order": {"value": '{"lines": [1, 2]}', "type": "Json"},
            "nothing": {"value": None, "type": "Null"},
            "untyped": {"value": [1, 2]},
        },
        businessKey="A-17",
        caseInstanceId=None,
        withVariablesInReturn=True,
    )
    assert out["businessKey"] == "A-17" and out["ended"] is False
    inst = served.engine.get_instance(str(out["id"]))
    assert inst.variables == {
        "amount": 30,
        "big": 9000000000,
        "rate": 1.5,
        "ok": True,
        "name": "Ann",
        "order": {"lines": [1, 2]},
        "nothing": None,
        "untyped": [1, 2],
    }
    typed = served.client.get(f"/process-instance/{out['id']}/variables").json()
    assert typed["amount"] == {"type": "Integer", "value": 30, "valueInfo": {}}
    assert typed["big"]["type"] == "Long"
    assert typed["order"] == {"type": "Json", "value": '{"lines": [1, 2]}', "valueInfo": {}}
    assert typed["nothing"]["type"] == "Null"
    one = served.client.get(f"/process-instance/{out['id']}/variables/rate").json()
    assert one == {"type": "Double", "value": 1.5, "valueInfo": {}}
    assert served.client.get(f"/process-instance/{out['id']}/variables/nope").status_code == 404
    # A body of nulls starts with nothing set.
    empty = served.client.post(
        "/process-definition/key/Payment/start", json={"variables": None, "businessKey": None}
    )
    assert empty.status_code == 200
    assert served.engine.get_instance(empty.json()["id"]).variables == {}


def test_bad_variables_and_unknown_keys_answer_camunda_errors(served: Served) -> None:
    deploy(served, HERE / "payment.bpmn")
    before = len(served.engine.instances())
    bad = served.client.post(
        "/process-definition/key/Payment/start",
        json={"variables": {"amount": {"value": "lots", "type": "Integer"}}},
    )
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/json"
    assert bad.json()["type"] == "InvalidRequestException"
    assert "amount" in bad.json()["message"] and set(bad.json()) == {"type", "message", "code"}
    unsupported = served.client.post(
        "/process-definition/key/Payment/start",
        json={"variables": {"pic": {"value": "AAAA", "type": "Bytes"}}},
    )
    assert unsupported.status_code == 400 and "Bytes" in unsupported.json()["message"]
    missing = served.client.post("/process-definition/key/Nope/start", json={})
    assert missing.status_code == 404 and missing.json()["type"] == "InvalidRequestException"
    assert served.client.get("/process-instance/nope").status_code == 404
    assert len(served.engine.instances()) == before
    not_json = served.client.post(
        "/process-definition/key/Payment/start",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 400


def test_fetch_and_lock_by_process_variables_and_version_tag(
    served: Served, tmp_path: Path
) -> None:
    tagged = tmp_path / "payment.bpmn"
    xml = (HERE / "payment.bpmn").read_text()
    tagged.write_text(xml.replace('id="Payment"', 'id="Payment" camunda:versionTag="v-7"', 1))
    deploy(served, tagged)
    eu = start(served, "Payment", variables={"region": {"value": "eu"}, "amount": {"value": 1}})
    us = start(served, "Payment", variables={"region": {"value": "us"}, "amount": {"value": 2}})
    assert fetch(served, processVariables={"region": "asia"}) == []
    (got,) = fetch(served, processVariables={"region": "eu"}, processDefinitionVersionTag="v-7")
    assert got["processInstanceId"] == eu["id"]
    assert got["processDefinitionVersionTag"] == "v-7"
    assert fetch(served, processDefinitionVersionTag="other") == []
    (rest,) = fetch(served, worker="w2", processVariables={"amount": 2, "region": "nowhere"})
    assert rest["processInstanceId"] == us["id"]
    bad = served.client.post(
        "/external-task/fetchAndLock",
        json={
            "workerId": "w",
            "maxTasks": 1,
            "topics": [
                {"topicName": "charge", "lockDuration": 1000, "processVariables": {"a": []}}
            ],
        },
    )
    assert bad.status_code == 400 and "processVariables.a" in bad.json()["message"]
    (definition,) = served.client.get("/process-definition", params={"key": "Payment"}).json()
    assert definition["versionTag"] == "v-7"
    listed = served.client.get("/external-task", params={"processInstanceId": us["id"]}).json()
    assert [t["processDefinitionVersionTag"] for t in listed] == ["v-7"]


def test_fetch_and_lock_dto_filters_and_variables(served: Served) -> None:
    deploy(served, HERE / "payment.bpmn")
    a = start(
        served, "Payment", variables={"amount": {"value": 1}, "x": {"value": "y"}}, businessKey="A"
    )
    start(served, "Payment", variables={"amount": {"value": 2}}, businessKey="B")
    assert fetch(served, businessKey="nope") == []
    assert fetch(served, processDefinitionKey="Other") == []
    tasks = fetch(served, businessKey="A", variables=["amount"], processDefinitionKeyIn=["Payment"])
    assert len(tasks) == 1
    task = tasks[0]
    assert task["processInstanceId"] == a["id"] and task["businessKey"] == "A"
    assert task["variables"] == {"amount": {"type": "Integer", "value": 1, "valueInfo": {}}}
    assert task["topicName"] == "charge" and task["workerId"] == "w1"
    assert task["activityId"] == "Charge" and task["processDefinitionKey"] == "Payment"
    assert DATE.match(str(task["lockExpirationTime"])) and DATE.match(str(task["createTime"]))
    assert task["retries"] is None and task["extensionProperties"] == {}
    rest = fetch(served, worker="w2", includeExtensionProperties=True)
    assert [t["businessKey"] for t in rest] == ["B"]
    assert rest[0]["extensionProperties"] == {"gateway": "test"}
    assert fetch(served, worker="w3") == []  # both locked


def test_use_priority_and_max_tasks(served: Served) -> None:
    deploy(served, HERE / "payment.bpmn")
    for n in range(3):
        start(served, "Payment", variables={"amount": {"value": n}})
    response = served.client.post(
        "/external-task/fetchAndLock",
        json={
            "workerId": "w",
            "maxTasks": 2,
            "usePriority": True,
            "asyncResponseTimeout": None,
            "sorting": None,
            "topics": [{"topicName": "charge", "lockDuration": 5000, "processVariables": {}}],
        },
    )
    assert response.status_code == 200 and len(response.json()) == 2


def test_reports_lock_rules_and_duplicates(served: Served) -> None:
    deploy(served, HERE / "payment.bpmn")
    inst = start(served, "Payment", variables={"amount": {"value": 5}})
    (task,) = fetch(served)
    url = f"/external-task/{task['id']}"
    other = served.client.post(f"{url}/complete", json={"workerId": "intruder"})
    assert other.status_code == 400 and other.json()["type"] == "BadUserRequestException"
    unknown = served.client.post("/external-task/nope/complete", json={"workerId": "w1"})
    assert unknown.status_code == 404
    assert (
        served.client.post(
            f"{url}/extendLock", json={"workerId": "w1", "newDuration": 60_000}
        ).status_code
        == 204
    )
    locked = served.client.get(url).json()
    assert locked["workerId"] == "w1"
    done = served.client.post(
        f"{url}/complete",
        json={"workerId": "w1", "variables": {"paid": {"value": True}}, "localVariables": None},
    )
    assert done.status_code == 204 and done.content == b""
    assert served.engine.get_instance(str(inst["id"])).state == "completed"
    history = len(served.engine.history(str(inst["id"])))
    # A duplicate completion answers 204 and changes nothing (Camunda answers 404).
    again = served.client.post(f"{url}/complete", json={"workerId": "w1"})
    assert again.status_code == 204
    assert len(served.engine.history(str(inst["id"]))) == history
    assert served.engine.get_instance(str(inst["id"])).variables["paid"] is True


def test_completing_a_task_this_server_did_not_fetch(served: Served) -> None:
    # Fetched on "another node" (the Python API): the server finds its instance by its row.
    deploy(served, HERE / "payment.bpmn")
    inst = start(served, "Payment", variables={"amount": {"value": 5}})
    (task,) = served.engine.external_tasks.fetch_and_lock("elsewhere", ["charge"])
    done = served.client.post(f"/external-task/{task.id}/complete", json={"workerId": "elsewhere"})
    assert done.status_code == 204
    assert served.engine.get_instance(str(inst["id"])).state == "completed"


def test_the_task_index_forgets_the_oldest_beyond_its_capacity() -> None:
    from datetime import UTC, datetime

    from engine.core.values import ExternalTask
    from engine.http.task_index import TaskIndex

    def task(n: int) -> ExternalTask:
        now = datetime.now(UTC)
        return ExternalTask(f"t{n}", "copy", f"i{n}", "A", {"big": "x" * 100}, None, now, None)

    index = TaskIndex(capacity=2)
    index.remember([task(1), task(2), task(3)])
    assert len(index) == 2 and index.take("t1") is None
    kept = index.take("t2")
    assert kept is not None and kept.instance_id == "i2" and kept.variables == {}
    assert index.take("t2") is None  # taken once: a report ends the lock either way


def test_failure_with_retries_then_incident_and_job_retry(served: Served) -> None:
    deploy(served, HERE / "payment.bpmn")
    inst = start(served, "Payment", variables={"amount": {"value": 5}})
    (task,) = fetch(served)
    url = f"/external-task/{task['id']}"
    failed = served.client.post(
        f"{url}/failure",
        json={
            "workerId": "w1",
            "errorMessage": "boom",
            "errorDetails": "trace",
            "retries": 1,
            "retryTimeout": 0,
        },
    )
    assert failed.status_code == 204
    (again,) = fetch(served)
    assert again["id"] == task["id"] and again["retries"] == 1
    assert again["errorMessage"] == "boom" and again["errorDetails"] == "trace"
    last = served.client.post(
        f"{url}/failure",
        json={"workerId": "w1", "errorMessage": "dead", "retries": 0, "retryTimeout": None},
    )
    assert last.status_code == 204
    incidents = served.client.get("/incident", params={"processInstanceId": inst["id"]}).json()
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["incidentType"] == "failedExternalTask"
    assert incident["configuration"] == task["id"] and incident["incidentMessage"] == "dead"
    assert DATE.match(incident["incidentTimestamp"])
    assert (
        served.client.get("/external-task", params={"noRetriesLeft": "true"}).json()[0]["id"]
        == task["id"]
    )
    assert fetch(served) == []
    served.engine.retry(incident["id"], retries=2)
    assert served.client.get("/incident").json() == []
    assert [t["id"] for t in fetch(served)] == [task["id"]]


def test_bpmn_error_takes_the_boundary(served: Served) -> None:
    deploy(served, HERE / "payment.bpmn")
    inst = start(served, "Payment", variables={"amount": {"value": 5}})
    (task,) = fetch(served)
    response = served.client.post(
        f"/external-task/{task['id']}/bpmnError",
        json={
            "workerId": "w1",
            "errorCode": "CARD_DECLINED",
            "errorMessage": "no",
            "variables": {"why": {"value": "limit", "type": "String"}},
        },
    )
    assert response.status_code == 204
    done = served.engine.get_instance(str(inst["id"]))
    assert done.state == "completed" and done.variables["why"] == "limit"
    assert "NotPaid" in [h.activity_id for h in served.engine.history(done.id)]


def test_lock_and_unlock_by_id(served: Served) -> None:
    deploy(served, HERE / "payment.bpmn")
    start(served, "Payment", variables={"amount": {"value": 5}})
    (listed,) = served.client.get("/external-task", params={"topicName": "charge"}).json()
    url = f"/external-task/{listed['id']}"
    assert (
        served.client.post(
            f"{url}/lock", json={"workerId": "a", "lockDuration": 60_000}
        ).status_code
        == 204
    )
    taken = served.client.post(f"{url}/lock", json={"workerId": "b", "lockDuration": 60_000})
    assert taken.status_code == 400
    assert fetch(served) == []
    assert (
        served.client.get("/external-task", params={"locked": "true"}).json()[0]["workerId"] == "a"
    )
    assert served.client.post(f"{url}/unlock").status_code == 204
    assert [t["id"] for t in fetch(served, worker="b")] == [listed["id"]]
    assert served.client.get("/external-task/count").json() == {"count": 1}


def test_jobs_incidents_and_retries(served: Served) -> None:
    eng: ProcessEngine = served.engine
    calls: list[int] = []

    def flaky(ctx: object) -> dict[str, object]:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("down")
        return {"ok": True}

    eng.register_handler("flaky", flaky)
    xml = (
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">'
        '<bpmn:process id="Flaky" isExecutable="true"><bpmn:startEvent id="s"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="T"/>'
        '<bpmn:serviceTask id="T" camunda:class="flaky"><bpmn:extensionElements>'
        "<camunda:failedJobRetryTimeCycle>R1/PT0S</camunda:failedJobRetryTimeCycle>"
        "</bpmn:extensionElements></bpmn:serviceTask>"
        '<bpmn:sequenceFlow id="f2" sourceRef="T" targetRef="e"/><bpmn:endEvent id="e"/>'
        "</bpmn:process></bpmn:definitions>"
    )
    response = served.client.post(
        "/deployment/create", files={"flaky.bpmn": ("flaky.bpmn", xml.encode(), "text/xml")}
    )
    assert response.status_code == 200, response.text
    inst = start(served, "Flaky")
    (job,) = served.client.get("/job", params={"processInstanceId": inst["id"]}).json()
    assert job["retries"] == 1 and job["exceptionMessage"] and DATE.match(job["dueDate"])
    assert job["processDefinitionKey"] == "Flaky" and job["failedActivityId"] == "T"
    assert served.client.post(f"/job/{job['id']}/execute").status_code == 204
    (incident,) = served.client.get("/incident").json()
    assert incident["incidentType"] == "failedJob" and incident["configuration"] == job["id"]
    assert (
        served.client.get("/process-instance", params={"withIncident": "true"}).json()[0]["id"]
        == inst["id"]
    )
    assert served.client.put(f"/job/{job['id']}/retries", json={"retries": 0}).status_code == 400
    assert served.client.put("/job/nope/retries", json={"retries": 1}).status_code == 404
    assert served.client.put(f"/job/{job['id']}/retries", json={"retries": 1}).status_code == 204
    assert served.client.get("/incident").json() == []
    assert served.client.post(f"/job/{job['id']}/execute").status_code == 204
    assert eng.get_instance(str(inst["id"])).state == "completed"
    assert served.client.get("/job/count").json() == {"count": 0}


def test_message_correlation(served: Served) -> None:
    head = (
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'id="d" targetNamespace="t">'
    )
    wait = (
        head + '<bpmn:message id="m" name="Paid"/>'
        '<bpmn:process id="Wait" isExecutable="true"><bpmn:startEvent id="s"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="c"/>'
        '<bpmn:intermediateCatchEvent id="c"><bpmn:messageEventDefinition messageRef="m"/>'
        '</bpmn:intermediateCatchEvent><bpmn:sequenceFlow id="f2" sourceRef="c" targetRef="e"/>'
        '<bpmn:endEvent id="e"/></bpmn:process></bpmn:definitions>'
    )
    by_message = (
        head + '<bpmn:message id="m2" name="Order"/>'
        '<bpmn:process id="ByMessage" isExecutable="true"><bpmn:startEvent id="ms">'
        '<bpmn:messageEventDefinition messageRef="m2"/></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="g1" sourceRef="ms" targetRef="u"/><bpmn:userTask id="u"/>'
        "</bpmn:process></bpmn:definitions>"
    )
    files = [
        ("a", ("wait.bpmn", wait.encode(), "text/xml")),
        ("b", ("by-message.bpmn", by_message.encode(), "text/xml")),
    ]
    assert served.client.post("/deployment/create", files=files).status_code == 200
    inst = start(served, "Wait", variables={"order": {"value": "A-1"}}, businessKey="A-1")
    nobody = served.client.post("/message", json={"messageName": "Paid", "businessKey": "B"})
    assert nobody.status_code == 400
    assert nobody.json()["type"] == "MismatchingMessageCorrelationException"
    ok = served.client.post(
        "/message",
        json={
            "messageName": "Paid",
            "correlationKeys": {"order": {"value": "A-1", "type": "String"}},
            "processVariables": {"amount": {"value": 3}},
            "resultEnabled": True,
        },
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()[0]["resultType"] == "Execution"
    assert served.engine.get_instance(str(inst["id"])).state == "completed"
    started = served.client.post("/message", json={"messageName": "Order", "businessKey": "O-9"})
    assert started.status_code == 204, started.text
    (new,) = served.engine.instances(process_key="ByMessage")
    assert new.business_key == "O-9"
    running = served.client.get("/process-instance").json()
    assert [i["id"] for i in running] == [new.id]
    assert served.client.get(f"/process-instance/{inst['id']}").json()["ended"] is True


def test_message_to_all_and_to_one_instance(served: Served) -> None:
    wait = (
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'id="d" targetNamespace="t"><bpmn:message id="m" name="Paid"/>'
        '<bpmn:process id="Wait" isExecutable="true"><bpmn:startEvent id="s"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="c"/>'
        '<bpmn:intermediateCatchEvent id="c"><bpmn:messageEventDefinition messageRef="m"/>'
        '</bpmn:intermediateCatchEvent><bpmn:sequenceFlow id="f2" sourceRef="c" targetRef="u"/>'
        '<bpmn:userTask id="u"/></bpmn:process></bpmn:definitions>'
    )
    files = {"a": ("wait.bpmn", wait.encode(), "text/xml")}
    assert served.client.post("/deployment/create", files=files).status_code == 200
    ids = [str(start(served, "Wait", businessKey=f"k{n}")["id"]) for n in range(3)]
    one = served.client.post(
        "/message",
        json={"messageName": "Paid", "processInstanceId": ids[2], "resultEnabled": True},
    )
    assert one.status_code == 200, one.text
    assert [r["execution"]["processInstanceId"] for r in one.json()] == [ids[2]]
    assert served.engine.get_instance(ids[2]).waiting_at == ["u"]
    again = served.client.post(
        "/message", json={"messageName": "Paid", "processInstanceId": ids[2]}
    )
    assert again.status_code == 400
    assert again.json()["type"] == "MismatchingMessageCorrelationException"
    # Without all, two waiting instances are ambiguous; with all, both get it.
    assert served.client.post("/message", json={"messageName": "Paid"}).status_code == 400
    both = served.client.post(
        "/message",
        json={
            "messageName": "Paid",
            "all": True,
            "processVariables": {"paid": {"value": True, "type": "Boolean"}},
            "resultEnabled": True,
            "variablesInResultEnabled": True,
        },
    )
    assert both.status_code == 200, both.text
    assert sorted(r["execution"]["id"] for r in both.json()) == sorted(ids[:2])
    assert {r["resultType"] for r in both.json()} == {"Execution"}
    assert all(r["variables"]["paid"]["value"] is True for r in both.json())
    assert all(served.engine.get_instance(i).waiting_at == ["u"] for i in ids)
    none = served.client.post("/message", json={"messageName": "Paid", "all": True})
    assert none.status_code == 204


@pytest.mark.parametrize("path", ["/nope", "/process-instance/x/nope"])
def test_unknown_paths_answer_json_404(served: Served, path: str) -> None:
    response = served.client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"type", "message", "code"}


def test_asgi_app_mounts_in_a_users_service(http_engine: ProcessEngine) -> None:
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Mount

    http_engine.deploy(str(HERE / "payment.bpmn"))
    service = Starlette(routes=[Mount("/camunda", app=http_engine.asgi_app(auth="a:b"))])

    async def use() -> None:
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            assert (await client.get("/camunda/engine-rest/version")).status_code == 401
            started = await client.post(
                "/camunda/engine-rest/process-definition/key/Payment/start",
                json={"variables": {"amount": {"value": 4}}},
                auth=("a", "b"),
            )
            assert started.status_code == 200
            href = started.json()["links"][0]["href"]
            assert href == f"http://svc/camunda/engine-rest/process-instance/{started.json()['id']}"
            spec = await client.get("/camunda/engine-rest/openapi.json", auth=("a", "b"))
            assert spec.json()["servers"] == [{"url": "/camunda/engine-rest"}]

    asyncio.run(use())
