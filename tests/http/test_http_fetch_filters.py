"""The fetch filters and priority order the REST API relies on, in the Python API:
``fetch_and_lock`` topic dicts with ``business_key`` / ``process_key`` / ``definition_id``,
``use_priority`` over ``camunda:taskPriority``, and ``lock`` by id."""

from __future__ import annotations

import pytest

from engine import DeploymentError, LockLost, ProcessEngine


def _process(key: str, priority: str | None) -> bytes:
    attr = f' camunda:taskPriority="{priority}"' if priority is not None else ""
    return (
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        f'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d{key}" targetNamespace="t">'
        f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="s"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="T"/>'
        f'<bpmn:serviceTask id="T" camunda:type="external" camunda:topic="work"{attr}/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="T" targetRef="e"/><bpmn:endEvent id="e"/>'
        "</bpmn:process></bpmn:definitions>"
    ).encode()


def test_use_priority_takes_the_highest_task_priority_first(eng: ProcessEngine) -> None:
    eng.deploy(_process("Low", "1"))
    eng.deploy(_process("High", "10"))
    low = eng.start("Low")
    high = eng.start("High")
    (first,) = eng.external_tasks.fetch_and_lock("w", ["work"], max_tasks=1, use_priority=True)
    assert (first.instance_id, first.priority) == (high.id, 10)
    (second,) = eng.external_tasks.fetch_and_lock("w", ["work"], max_tasks=1)
    assert second.instance_id == low.id


def test_fetch_filters(eng: ProcessEngine) -> None:
    eng.deploy(_process("A", None))
    dep_b = eng.deploy(_process("B", None))
    a1 = eng.start("A", business_key="k1")
    eng.start("A", business_key="k2")
    b = eng.start("B", business_key="k1")
    fetch = eng.external_tasks.fetch_and_lock
    got = fetch("w", [{"topic": "work", "business_key": "k1", "process_key": "A"}])
    assert [t.instance_id for t in got] == [a1.id]
    definition = eng.get_instance(b.id).definition_id
    assert dep_b.process_keys == ("B",)
    got = fetch("w", [{"topic": "work", "definition_id": [definition]}])
    assert [t.instance_id for t in got] == [b.id]
    assert fetch("w", [{"topic": "work", "process_key": ["A", "B"], "business_key": "k9"}]) == []
    assert len(fetch("w", [{"topic": "work"}])) == 1  # the one left


def test_lock_by_id(eng: ProcessEngine) -> None:
    eng.deploy(_process("A", None))
    eng.start("A")
    (task,) = eng.external_tasks.list()
    locked = eng.external_tasks.lock(task.id, "a", lock_duration=30.0)
    assert locked.worker_id == "a"
    assert eng.external_tasks.lock(task.id, "a", 60.0).worker_id == "a"  # renewed by the holder
    with pytest.raises(LockLost):
        eng.external_tasks.lock(task.id, "b", 30.0)
    assert eng.external_tasks.fetch_and_lock("b", ["work"]) == []
    assert eng.external_tasks.complete(task.id, "a")


def test_a_priority_expression_is_refused_at_deploy(eng: ProcessEngine) -> None:
    with pytest.raises(DeploymentError, match="taskPriority"):
        eng.deploy(_process("P", "${prio}"))
