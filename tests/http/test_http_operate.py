"""Endpoints over the operator verbs (``eng.cancel``, ``set_variables``, ``remove_variables``,
``tasks``, ``claim``, ``unclaim``, ``set_assignee``): they run once the operate branch is
merged."""

from __future__ import annotations

import pytest
from conftest import HERE, Served

from engine import ProcessEngine

pytestmark = pytest.mark.skipif(
    not hasattr(ProcessEngine, "cancel"), reason="needs the operator verbs (operate branch)"
)

APPROVAL = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">'
    '<bpmn:process id="Approval" isExecutable="true"><bpmn:startEvent id="s"/>'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="Approve"/>'
    '<bpmn:userTask id="Approve" name="Approve order" camunda:candidateGroups="managers" '
    'camunda:formKey="embedded:app:approve.html"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="Approve" targetRef="e"/><bpmn:endEvent id="e"/>'
    "</bpmn:process></bpmn:definitions>"
)


def _start_approval(served: Served) -> str:
    files = {"a": ("approval.bpmn", APPROVAL.encode(), "text/xml")}
    assert served.client.post("/deployment/create", files=files).status_code == 200
    response = served.client.post(
        "/process-definition/key/Approval/start",
        json={"variables": {"amount": {"value": 10, "type": "Integer"}}},
    )
    assert response.status_code == 200
    instance_id: str = response.json()["id"]
    return instance_id


def test_user_tasks_claim_unclaim_complete(served: Served) -> None:
    instance_id = _start_approval(served)
    (task,) = served.client.get("/task", params={"processInstanceId": instance_id}).json()
    assert task["taskDefinitionKey"] == "Approve" and task["name"] == "Approve order"
    assert task["assignee"] is None and task["formKey"] == "embedded:app:approve.html"
    assert (
        served.client.get("/task", params={"candidateGroup": "managers"}).json()[0]["id"]
        == task["id"]
    )
    url = f"/task/{task['id']}"
    assert served.client.post(f"{url}/claim", json={"userId": "ann"}).status_code == 204
    assert served.client.get(url).json()["assignee"] == "ann"
    assert served.client.get("/task", params={"assignee": "ann"}).json()[0]["id"] == task["id"]
    assert served.client.post(f"{url}/unclaim").status_code == 204
    assert served.client.get(url).json()["assignee"] is None
    done = served.client.post(
        f"{url}/complete",
        json={
            "variables": {"ok": {"value": True, "type": "Boolean"}},
            "withVariablesInReturn": True,
        },
    )
    assert done.status_code == 200
    assert done.json()["ok"] == {"type": "Boolean", "value": True, "valueInfo": {}}
    assert served.engine.get_instance(instance_id).state == "completed"
    assert served.client.post(f"{url}/complete", json={}).status_code == 404
    assert served.client.post("/task/nope/claim", json={"userId": "x"}).status_code == 404


def test_variables_put_and_modify(served: Served) -> None:
    instance_id = _start_approval(served)
    url = f"/process-instance/{instance_id}/variables"
    put = served.client.put(f"{url}/note", json={"value": "hi", "type": "String"})
    assert put.status_code == 204
    modified = served.client.post(
        url, json={"modifications": {"n": {"value": 2}}, "deletions": ["amount"]}
    )
    assert modified.status_code == 204
    assert served.engine.get_instance(instance_id).variables == {"note": "hi", "n": 2}
    bare = served.client.put(url, json={"x": {"value": "1", "type": "Integer"}})
    assert bare.status_code == 204
    assert served.engine.get_instance(instance_id).variables["x"] == 1
    assert served.client.delete(f"{url}/note").status_code == 204
    assert "note" not in served.engine.get_instance(instance_id).variables
    assert (
        served.client.put("/process-instance/nope/variables/x", json={"value": 1}).status_code
        == 404
    )


def test_delete_cancels_the_instance(served: Served) -> None:
    served.engine.deploy(str(HERE / "payment.bpmn"))
    inst = served.engine.start("Payment", {"amount": 1})
    response = served.client.delete(f"/process-instance/{inst.id}")
    assert response.status_code == 204
    assert served.engine.get_instance(inst.id).state == "terminated"
    assert served.engine.external_tasks.list() == []
    assert served.client.delete(f"/process-instance/{inst.id}").status_code == 404
    assert served.client.delete("/process-instance/nope").status_code == 404


def test_modifications_and_deletions_are_one_transaction(served: Served) -> None:
    instance_id = _start_approval(served)
    url = f"/process-instance/{instance_id}/variables"
    rev = served.engine.store.instance(instance_id)["rev"]
    # The deletion names a variable the instance lacks: refused, and the modification with it.
    refused = served.client.post(
        url, json={"modifications": {"n": {"value": 2}}, "deletions": ["missing"]}
    )
    assert refused.status_code == 400
    assert "missing" in refused.json()["message"]
    assert served.engine.get_instance(instance_id).variables == {"amount": 10}
    assert served.engine.store.instance(instance_id)["rev"] == rev
    assert served.engine.variable_history(instance_id) == []
    both = served.client.post(
        url, json={"modifications": {"n": {"value": 2}}, "deletions": ["amount"]}
    )
    assert both.status_code == 204
    assert served.engine.get_instance(instance_id).variables == {"n": 2}
    assert served.engine.store.instance(instance_id)["rev"] == rev + 1  # one write
    changes = [(c.name, c.operation) for c in served.engine.variable_history(instance_id)]
    assert changes == [("n", "set"), ("amount", "removed")]
