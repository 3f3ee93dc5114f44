"""The fetch filters and priority order the REST API relies on, in the Python API:
``fetch_and_lock`` topic dicts with ``business_key`` / ``process_key`` / ``definition_id`` /
``process_variables`` / ``version_tag``,
``use_priority`` over ``camunda:taskPriority``, and ``lock`` by id."""

from __future__ import annotations

import pytest

from engine import DeploymentError, EngineError, LockLost, ProcessEngine


def _process(key: str, priority: str | None, version_tag: str | None = None) -> bytes:
    attr = f' camunda:taskPriority="{priority}"' if priority is not None else ""
    tag = f' camunda:versionTag="{version_tag}"' if version_tag is not None else ""
    return (
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        f'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d{key}" targetNamespace="t">'
        f'<bpmn:process id="{key}" isExecutable="true"{tag}><bpmn:startEvent id="s"/>'
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


def test_process_variables_filter_matches_instances_having_any_of_the_values(
    eng: ProcessEngine,
) -> None:
    eng.deploy(_process("A", None))
    started = {
        name: eng.start("A", variables)
        for name, variables in {
            "text": {"region": "eu", "n": 1},
            "int": {"region": "us", "n": 7},
            "float": {"ratio": 0.5},
            "flag": {"vip": True},
            "no-flag": {"vip": False},
            "null": {"region": None},
            "nested": {"region": {"code": "eu"}},
            "number-text": {"n": "7"},
        }.items()
    }

    def matching(filters: dict[str, object]) -> set[str]:
        tasks = eng.external_tasks.fetch_and_lock(
            "w", [{"topic": "work", "process_variables": filters}], max_tasks=100
        )
        for task in tasks:
            eng.external_tasks.unlock(task.id)
        ids = {t.instance_id for t in tasks}
        return {name for name, inst in started.items() if inst.id in ids}

    assert matching({"region": "eu"}) == {"text"}
    assert matching({"n": 7}) == {"int"}  # not the string "7"
    assert matching({"n": "7"}) == {"number-text"}
    assert matching({"ratio": 0.5}) == {"float"}
    assert matching({"vip": True}) == {"flag"}
    assert matching({"vip": False}) == {"no-flag"}
    assert matching({"region": None}) == {"null"}
    # The pairs are alternatives, as in Camunda: any one of them matching is enough.
    assert matching({"region": "eu", "vip": True}) == {"text", "flag"}
    assert matching({"region": "asia"}) == set()
    assert matching({"missing": 1}) == set()
    assert len(matching({})) == len(started)  # an empty filter filters nothing
    with pytest.raises(EngineError, match="process_variables\\['region'\\]"):
        matching({"region": {"code": "eu"}})


def test_version_tag_filter_matches_the_definitions_tag(eng: ProcessEngine) -> None:
    eng.deploy(_process("A", None, version_tag="1.0"))
    old = eng.start("A")
    eng.deploy(_process("A", "2", version_tag="2.0"))  # changed: version 2
    new = eng.start("A")
    eng.deploy(_process("B", None))
    untagged = eng.start("B")
    fetch = eng.external_tasks.fetch_and_lock
    (got,) = fetch("w", [{"topic": "work", "version_tag": "1.0"}])
    assert got.instance_id == old.id
    assert fetch("w", [{"topic": "work", "version_tag": "9.9"}]) == []
    (got,) = fetch("w", [{"topic": "work", "version_tag": "2.0", "process_key": "A"}])
    assert got.instance_id == new.id
    (rest,) = fetch("w", ["work"])
    assert rest.instance_id == untagged.id


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
