"""camunda:in / camunda:out on call activities and camunda:in on thrown signals, end to end."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from engine import DeploymentError, ProcessEngine, TaskContext
from engine.core.errors import EngineError
from tests.bpmnbuild import process, service, user

SIGNALS = '<bpmn:signal id="Sig_Go" name="go" />'


def call(mappings: str, called: str = "child") -> str:
    ext = f"<bpmn:extensionElements>{mappings}</bpmn:extensionElements>" if mappings else ""
    return f'<bpmn:callActivity id="Call" calledElement="{called}">{ext}</bpmn:callActivity>'


class Child:
    """The called process: a service task that records what it sees, then a user task, so
    the instance is stored and reloaded while the called process runs."""

    def __init__(self, eng: ProcessEngine, result: Mapping[str, Any] | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self.keys: list[str | None] = []
        self.result = dict(result or {"result": 7})
        eng.register_handler("child-work", self.work)

    def work(self, ctx: TaskContext) -> dict[str, Any]:
        self.seen.append(dict(ctx.variables))
        self.keys.append(ctx.business_key)
        return self.result


def deploy_pair(eng: ProcessEngine, tmp_path: Path, mappings: str) -> None:
    (tmp_path / "parent.bpmn").write_bytes(process("parent", call(mappings), user("After")))
    (tmp_path / "child.bpmn").write_bytes(
        process("child", service("Work", "child-work"), user("Inside"))
    )
    eng.deploy(tmp_path)


def run_through(eng: ProcessEngine, variables: dict[str, Any], key: str | None = None) -> Any:
    """Start the parent, finish the called process, return the parent at 'After'."""
    inst = eng.start("parent", variables=variables, business_key=key)
    assert inst.waiting_at == ["Inside"]
    after = eng.complete_task(inst.id, "Inside", variables={"inside": True})
    assert after.waiting_at == ["After"]
    return after


def test_source_target_pass_only_what_is_named(eng: ProcessEngine, tmp_path: Path) -> None:
    child = Child(eng, {"result": 7, "scratch": "child only"})
    deploy_pair(
        eng,
        tmp_path,
        '<camunda:in source="amount" target="total" />'
        '<camunda:in source="missing" target="nothing" />'
        '<camunda:out source="result" target="childResult" />',
    )
    after = run_through(eng, {"amount": 5, "secret": "caller only"})
    assert child.seen == [{"total": 5, "nothing": None}]
    assert after.variables["childResult"] == 7
    assert after.variables["amount"] == 5 and after.variables["secret"] == "caller only"
    for name in ("total", "result", "scratch", "inside"):
        assert name not in after.variables


def test_source_expressions_both_ways(eng: ProcessEngine, tmp_path: Path) -> None:
    child = Child(eng, {"result": 40})
    deploy_pair(
        eng,
        tmp_path,
        '<camunda:in sourceExpression="${amount * 2}" target="doubled" />'
        '<camunda:in sourceExpression="order ${id}" target="label" />'
        '<camunda:out sourceExpression="${result + 2}" target="answer" />',
    )
    after = run_through(eng, {"amount": 21, "id": "A-1"})
    assert child.seen == [{"doubled": 42, "label": "order A-1"}]
    assert after.variables["answer"] == 42 and "result" not in after.variables


def test_variables_all_both_ways(eng: ProcessEngine, tmp_path: Path) -> None:
    child = Child(eng)
    deploy_pair(eng, tmp_path, '<camunda:in variables="all" /><camunda:out variables="all" />')
    after = run_through(eng, {"amount": 5, "nested": {"a": [1, 2]}})
    assert child.seen == [{"amount": 5, "nested": {"a": [1, 2]}}]
    assert after.variables["result"] == 7 and after.variables["inside"] is True


def test_in_without_out_brings_nothing_back(eng: ProcessEngine, tmp_path: Path) -> None:
    child = Child(eng)
    deploy_pair(eng, tmp_path, '<camunda:in variables="all" />')
    after = run_through(eng, {"amount": 5})
    assert child.seen == [{"amount": 5}]
    assert after.variables == {"amount": 5}


def test_out_without_in_passes_nothing_in(eng: ProcessEngine, tmp_path: Path) -> None:
    child = Child(eng)
    deploy_pair(eng, tmp_path, '<camunda:out source="result" target="r" />')
    after = run_through(eng, {"amount": 5})
    assert child.seen == [{}]
    assert after.variables == {"amount": 5, "r": 7}


def test_later_mapping_of_a_target_wins(eng: ProcessEngine, tmp_path: Path) -> None:
    child = Child(eng)
    deploy_pair(eng, tmp_path, '<camunda:in variables="all" /><camunda:in source="b" target="a" />')
    run_through(eng, {"a": 1, "b": 2})
    assert child.seen == [{"a": 2, "b": 2}]


def test_local_in_passes_only_input_parameters(eng: ProcessEngine, tmp_path: Path) -> None:
    # Without camunda:inputParameter the call activity has no local variables.
    child = Child(eng)
    deploy_pair(eng, tmp_path, '<camunda:in variables="all" local="true" />')
    run_through(eng, {"amount": 5})
    assert child.seen == [{}]


def test_local_out_mappings_without_output_parameters_vanish(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    # They become locals of the call activity, which end with it (Camunda).
    Child(eng, {"result": 7, "kept": 1})
    deploy_pair(
        eng,
        tmp_path,
        '<camunda:out source="result" target="r" local="true" />'
        '<camunda:out source="kept" target="kept" />',
    )
    after = run_through(eng, {"amount": 5})
    assert after.variables == {"amount": 5, "kept": 1}


def test_no_mapping_passes_everything_both_ways(eng: ProcessEngine, tmp_path: Path) -> None:
    child = Child(eng)
    deploy_pair(eng, tmp_path, "")
    after = run_through(eng, {"amount": 5}, key="K")
    assert child.seen == [{"amount": 5}] and child.keys == ["K"]
    assert after.variables == {"amount": 5, "result": 7, "inside": True}


def test_business_key_for_the_called_process(eng: ProcessEngine, tmp_path: Path) -> None:
    child = Child(eng)
    deploy_pair(
        eng,
        tmp_path,
        '<camunda:in businessKey="#{execution.processBusinessKey}-child" />'
        '<camunda:in sourceExpression="${execution.businessKey}" target="parentKey" />',
    )
    inst = eng.start("parent", variables={}, business_key="BK-1")
    assert child.keys == ["BK-1-child"] and child.seen == [{"parentKey": "BK-1"}]
    assert eng.get_instance(inst.id).business_key == "BK-1"


def test_business_key_reaches_external_tasks_of_the_called_process(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    (tmp_path / "parent.bpmn").write_bytes(
        process("parent", call('<camunda:in businessKey="${code}" />'))
    )
    (tmp_path / "child.bpmn").write_bytes(
        process("child", service("Ext", extra='camunda:type="external" camunda:topic="t"'))
    )
    eng.deploy(tmp_path)
    eng.start("parent", variables={"code": "C-9"}, business_key="P-1")
    [task] = eng.external_tasks.fetch_and_lock("w", ["t"])
    assert task.business_key == "C-9"


def test_runtime_expression_error_names_the_call_activity(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    Child(eng)
    deploy_pair(eng, tmp_path, '<camunda:in sourceExpression="${amount + 1}" target="x" />')
    with pytest.raises(EngineError, match="'Call'.*camunda:in sourceExpression"):
        eng.start("parent", variables={})
    assert eng.instances() == []


def record_checks(eng: ProcessEngine) -> list[dict[str, Any]]:
    """Register the 'check' handler; the list receives the variables of each call."""
    seen: list[dict[str, Any]] = []

    def check(ctx: TaskContext) -> None:
        seen.append(dict(ctx.variables))

    eng.register_handler("check", check)
    return seen


def signal_process(mappings: str, end_or_throw: str = "end") -> bytes:
    """A catch branch (signal -> Check) beside a branch that throws the signal after Prepare."""
    definition = (
        f'<bpmn:signalEventDefinition signalRef="Sig_Go"><bpmn:extensionElements>{mappings}'
        "</bpmn:extensionElements></bpmn:signalEventDefinition>"
    )
    thrower = (
        f'<bpmn:endEvent id="Throw">{definition}</bpmn:endEvent>'
        if end_or_throw == "end"
        else f'<bpmn:intermediateThrowEvent id="Throw">{definition}</bpmn:intermediateThrowEvent>'
        '<bpmn:endEvent id="End2" />'
    )
    elements = [
        '<bpmn:parallelGateway id="Split" />',
        '<bpmn:intermediateCatchEvent id="Caught"><bpmn:signalEventDefinition '
        'signalRef="Sig_Go" /></bpmn:intermediateCatchEvent>',
        service("Check", "check"),
        '<bpmn:endEvent id="End1" />',
        user("Prepare"),
        thrower,
    ]
    flows = [
        ("StartEvent_1", "Split"),
        ("Split", "Caught"),
        ("Caught", "Check"),
        ("Check", "End1"),
        ("Split", "Prepare"),
        ("Prepare", "Throw"),
    ]
    if end_or_throw != "end":
        flows.append(("Throw", "End2"))
    return process("sig", *elements, flows=flows, definitions=SIGNALS, end="")


@pytest.mark.parametrize("kind", ["end", "throw"])
def test_signal_carries_its_in_mappings(eng: ProcessEngine, kind: str) -> None:
    seen = record_checks(eng)
    eng.deploy(
        signal_process(
            '<camunda:in source="x" target="y" />'
            '<camunda:in sourceExpression="${x * 10}" target="z" />'
            '<camunda:in sourceExpression="${S(\'{&quot;k&quot;: [1, 2]}\')}" target="obj" />',
            kind,
        )
    )
    inst = eng.start("sig", variables={"x": 3, "other": "o"})
    assert inst.waiting_at == ["Caught", "Prepare"]
    done = eng.complete_task(inst.id, "Prepare", variables={"x": 4, "hidden": True})
    assert done.state == "completed"
    # The catching branch keeps its own data and gains exactly what the signal carried.
    assert seen == [{"x": 3, "other": "o", "y": 4, "z": 40, "obj": {"k": [1, 2]}}]


def test_signal_without_mappings_carries_the_throwers_data(eng: ProcessEngine) -> None:
    seen = record_checks(eng)
    eng.deploy(signal_process(""))
    inst = eng.start("sig", variables={"x": 3})
    eng.complete_task(inst.id, "Prepare", variables={"x": 4, "hidden": True})
    assert seen == [{"x": 4, "hidden": True}]


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (call('<camunda:in source="a" />'), "camunda:in with source needs a target"),
        (call('<camunda:in variables="some" />'), 'only "all" exists'),
        (call('<camunda:in source="a" sourceExpression="${b}" target="c" />'), "exactly one"),
        (call('<camunda:out businessKey="x" />'), "cannot set a business key"),
        (call('<camunda:in sourceExpression="${a +}" target="c" />'), "cannot be evaluated"),
        (call('<camunda:in sourceExpression="${S(\'{oops\')}" target="c" />'), "not valid JSON"),
        (
            service(
                "Task",
                "h",
                body='<bpmn:extensionElements><camunda:in variables="all" />'
                "</bpmn:extensionElements>",
            ),
            "applies only to call activities",
        ),
    ],
)
def test_unsupported_mappings_are_refused(
    eng: ProcessEngine, xml: str, reason: str, tmp_path: Path
) -> None:
    eng.register_handler("h", lambda ctx: None)
    path = tmp_path / "bad.bpmn"
    path.write_bytes(process("bad", xml))
    with pytest.raises(DeploymentError) as err:
        eng.deploy(path)
    element = "Task" if "Task" in xml else "Call"
    assert f"bad.bpmn: element '{element}':" in str(err.value) and reason in str(err.value)


@pytest.mark.parametrize(
    ("mapping", "reason"),
    [
        ('<camunda:out variables="all" />', "camunda:out has no meaning on a signal"),
        ('<camunda:in businessKey="k" />', "business key is fixed"),
    ],
)
def test_signal_mappings_that_cannot_run_are_refused(
    eng: ProcessEngine, mapping: str, reason: str
) -> None:
    eng.register_handler("check", lambda ctx: None)
    with pytest.raises(DeploymentError) as err:
        eng.deploy(signal_process(mapping))
    assert "element 'Throw':" in str(err.value) and reason in str(err.value)


def test_mapping_on_a_catching_signal_is_refused(eng: ProcessEngine) -> None:
    catch = (
        '<bpmn:intermediateCatchEvent id="Wait"><bpmn:signalEventDefinition signalRef="Sig_Go">'
        '<bpmn:extensionElements><camunda:in variables="all" /></bpmn:extensionElements>'
        "</bpmn:signalEventDefinition></bpmn:intermediateCatchEvent>"
    )
    with pytest.raises(DeploymentError, match="element 'Wait': camunda:in applies only"):
        eng.deploy(process("c", catch, definitions=SIGNALS))
