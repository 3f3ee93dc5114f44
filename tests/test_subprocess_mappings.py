"""camunda:inputOutput on embedded subprocesses, transactions and call activities, and what a
BPMN error carries out of them, end to end through ProcessEngine."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from engine import BpmnError, DeploymentError, ProcessEngine, TaskContext
from tests.bpmnbuild import process, service, user
from tests.conftest import EngineFactory
from tests.test_mappings import inp, io, out, reload

ERRORS = '<bpmn:error id="Err" errorCode="FAILED" />'
ERROR_END = '<bpmn:endEvent id="Fail"><bpmn:errorEventDefinition errorRef="Err" /></bpmn:endEvent>'


def _id(node: str) -> str:
    return node.split('id="', 1)[1].split('"', 1)[0]


def scope(
    sid: str, mapping: str, *inner: str, tag: str = "subProcess", end: str | None = None
) -> str:
    """A subprocess (or transaction) with ``mapping``: start, ``inner`` in a row, end."""
    end = end or f'<bpmn:endEvent id="End_{sid}" />'
    ids = [f"Start_{sid}", *(_id(n) for n in inner), _id(end)]
    flows = "".join(
        f'<bpmn:sequenceFlow id="F_{sid}_{i}" sourceRef="{a}" targetRef="{b}" />'
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    )
    return (
        f'<bpmn:{tag} id="{sid}">{mapping}<bpmn:startEvent id="Start_{sid}" />'
        + "".join(inner)
        + f"{end}{flows}</bpmn:{tag}>"
    )


def error_boundary(attached_to: str) -> str:
    return (
        f'<bpmn:boundaryEvent id="Caught" attachedToRef="{attached_to}">'
        '<bpmn:errorEventDefinition errorRef="Err" /></bpmn:boundaryEvent>'
    )


class Recorder:
    """A handler that records the variables it sees and returns ``result``."""

    def __init__(self, result: dict[str, Any] | None = None) -> None:
        self.result = result or {}
        self.seen: list[dict[str, Any]] = []

    def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.seen.append(dict(ctx.variables))
        return self.result


# -- embedded subprocesses -----------------------------------------------------------------------


def test_subprocess_locals_stay_inside_and_survive_a_reload(
    eng: ProcessEngine, make_engine: EngineFactory
) -> None:
    work = Recorder({"x": 7, "made": True})
    eng.register_handler("work", work)
    mapping = io(
        inp("x", "${amount * 2}"),
        inp("covered", "local value"),
        out("result", "${x * 10}"),
        out("coveredSeen", "${covered}"),
    )
    sub = scope("Sub", mapping, service("Work", "work"), user("Inside"))
    eng.deploy(process("p", user("Before"), sub, user("After")))
    inst = eng.start("p", {"amount": 3, "covered": "outer"})
    assert inst.variables == {"amount": 3, "covered": "outer"}
    inst = eng.complete_task(inst.id, "Before", {})
    # Every activity inside sees the locals, covering the process variable of that name.
    assert work.seen == [{"amount": 3, "covered": "local value", "x": 6}]
    # While the subprocess runs the instance shows process variables only: what the handler
    # set on a local stays local, other names are process variables at once.
    assert inst.waiting_at == ["Inside"]
    assert inst.variables == {"amount": 3, "covered": "outer", "made": True}
    other = reload(eng, make_engine)
    assert other.get_instance(inst.id).variables == inst.variables
    after = other.complete_task(
        inst.id, "Inside", {"x": 100, "covered": "set inside", "fromUser": 1}
    )
    # Output parameters read the locals' final values and write to the process.
    assert after.waiting_at == ["After"]
    assert after.variables == {
        "amount": 3,
        "covered": "outer",
        "made": True,
        "fromUser": 1,
        "result": 1000,
        "coveredSeen": "set inside",
    }
    final = other.complete_task(inst.id, "After", {})
    assert final.state == "completed"
    assert "x" not in final.variables and final.variables["covered"] == "outer"
    types = {h.activity_id: h.activity_type for h in other.history(inst.id)}
    assert types["Sub"] == "subProcess"


def test_external_task_inside_sees_the_locals(
    eng: ProcessEngine, make_engine: EngineFactory
) -> None:
    charge = service("Charge", extra='camunda:type="external" camunda:topic="charge"')
    mapping = io(inp("cents", "${amount * 100}"), out("charged", "${cents}"))
    eng.deploy(process("p", scope("Sub", mapping, charge)))
    inst = eng.start("p", {"amount": 3})
    other = reload(eng, make_engine)
    [task] = other.external_tasks.fetch_and_lock("w", ["charge"])
    assert task.variables == {"amount": 3, "cents": 300}
    assert other.external_tasks.complete(task.id, "w", {"cents": 250, "ref": "R-1"})
    after = other.get_instance(inst.id)
    assert after.state == "completed"
    assert after.variables == {"amount": 3, "ref": "R-1", "charged": 250}


def test_gateway_inside_reads_a_local(eng: ProcessEngine) -> None:
    mapping = io(inp("limit", "${amount > 10}"))
    inner = (
        '<bpmn:exclusiveGateway id="Gw" />'
        '<bpmn:userTask id="Big" /><bpmn:userTask id="Small" />'
        '<bpmn:endEvent id="End_Sub" />'
    )
    sub = (
        f'<bpmn:subProcess id="Sub">{mapping}<bpmn:startEvent id="Start_Sub" />{inner}'
        '<bpmn:sequenceFlow id="G0" sourceRef="Start_Sub" targetRef="Gw" />'
        '<bpmn:sequenceFlow id="G1" sourceRef="Gw" targetRef="Big">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${limit}'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="G2" sourceRef="Gw" targetRef="Small">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${!limit}'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="G3" sourceRef="Big" targetRef="End_Sub" />'
        '<bpmn:sequenceFlow id="G4" sourceRef="Small" targetRef="End_Sub" />'
        "</bpmn:subProcess>"
    )
    eng.deploy(process("p", sub))
    assert eng.start("p", {"amount": 50}).waiting_at == ["Big"]
    small = eng.start("p", {"amount": 5})
    assert small.waiting_at == ["Small"] and small.variables == {"amount": 5}


def test_nested_subprocess_sets_the_outer_local(eng: ProcessEngine) -> None:
    inner = scope("Inner", io(inp("depth", "2")), user("Deep"))
    outer = scope("Outer", io(inp("depth", "1"), inp("log", "start"), out("log", "${log}")), inner)
    eng.deploy(process("p", outer, user("After")))
    inst = eng.start("p", {"depth": 0})
    assert inst.waiting_at == ["Deep"] and inst.variables == {"depth": 0}
    # 'log' is a local of the outer scope: set from inside the inner one, it updates that
    # local, which the outer output parameter then writes; 'depth' stays the process's.
    after = eng.complete_task(inst.id, "Deep", {"log": "deep", "depth": 9})
    assert after.waiting_at == ["After"]
    assert after.variables == {"depth": 0, "log": "deep"}


def test_error_leaving_a_subprocess_carries_no_locals(eng: ProcessEngine) -> None:
    mapping = io(inp("secret", "${amount}"), inp("amount", "-1"), out("never", "1"))
    sub = scope("Sub", mapping, service("Work", "work"), end=ERROR_END)
    eng.register_handler("work", lambda ctx: {"progress": ctx.variables["secret"] + 1})
    xml = process(
        "p",
        sub,
        error_boundary("Sub"),
        user("Handle"),
        user("After"),
        flows=[
            ("StartEvent_1", "Sub"),
            ("Sub", "After"),
            ("After", "EndEvent_1"),
            ("Caught", "Handle"),
            ("Handle", "EndEvent_1"),
        ],
        definitions=ERRORS,
    )
    eng.deploy(xml)
    inst = eng.start("p", {"amount": 5})
    # The error end event carried the subprocess's data: its process variables come along,
    # the locals do not, and a covered name keeps the process's value. Output parameters do
    # not run when a boundary event interrupts the subprocess (Camunda).
    assert inst.waiting_at == ["Handle"]
    assert inst.variables == {"amount": 5, "progress": 6}


def test_error_caught_between_nested_scopes_keeps_the_outer_locals(eng: ProcessEngine) -> None:
    seen = Recorder()
    eng.register_handler("handle", seen)
    inner = scope("Inner", io(inp("a", "inner local")), end=ERROR_END)
    outer_body = (
        io(inp("b", "outer local"))
        + '<bpmn:startEvent id="Start_Outer" />'
        + inner
        + error_boundary("Inner")
        + service("Handle", "handle")
        + '<bpmn:endEvent id="End_Outer" /><bpmn:endEvent id="End_Handled" />'
        '<bpmn:sequenceFlow id="O1" sourceRef="Start_Outer" targetRef="Inner" />'
        '<bpmn:sequenceFlow id="O2" sourceRef="Inner" targetRef="End_Outer" />'
        '<bpmn:sequenceFlow id="O3" sourceRef="Caught" targetRef="Handle" />'
        '<bpmn:sequenceFlow id="O4" sourceRef="Handle" targetRef="End_Handled" />'
    )
    outer = f'<bpmn:subProcess id="Outer">{outer_body}</bpmn:subProcess>'
    eng.deploy(process("p", outer, user("After"), definitions=ERRORS))
    inst = eng.start("p", {"amount": 1})
    # The error left only the inner scope: the handler in the outer scope still sees 'b'.
    assert seen.seen == [{"amount": 1, "b": "outer local"}]
    assert inst.waiting_at == ["After"] and inst.variables == {"amount": 1}


def test_handler_error_inside_a_subprocess_keeps_locals_inside(eng: ProcessEngine) -> None:
    def fail(ctx: TaskContext) -> dict[str, Any]:
        raise BpmnError("FAILED", variables={"scratch": "local!", "why": "declined"})

    eng.register_handler("fail", fail)
    sub = scope("Sub", io(inp("scratch", "inside")), service("Work", "fail"))
    xml = process(
        "p",
        sub,
        error_boundary("Sub"),
        user("Handle"),
        flows=[
            ("StartEvent_1", "Sub"),
            ("Sub", "EndEvent_1"),
            ("Caught", "Handle"),
            ("Handle", "EndEvent_1"),
        ],
        definitions=ERRORS,
    )
    eng.deploy(xml)
    inst = eng.start("p", {"amount": 1})
    assert inst.waiting_at == ["Handle"]
    assert inst.variables == {"amount": 1, "why": "declined"}


def test_transaction_locals(eng: ProcessEngine) -> None:
    mapping = io(inp("attempt", "1"), out("attempts", "${attempt + 1}"))
    tx = scope("Tx", mapping, user("Book"), tag="transaction")
    eng.deploy(process("p", tx, user("After")))
    inst = eng.start("p", {})
    assert inst.waiting_at == ["Book"] and inst.variables == {}
    after = eng.complete_task(inst.id, "Book", {"attempt": 4})
    assert after.variables == {"attempts": 5}


# -- call activities -------------------------------------------------------------------------------


def call(body: str, called: str = "child") -> str:
    return f'<bpmn:callActivity id="Call" calledElement="{called}">{body}</bpmn:callActivity>'


def with_mappings(io_params: str, mappings: str) -> str:
    """extensionElements holding camunda:inputOutput parameters and camunda:in/out."""
    return (
        "<bpmn:extensionElements><camunda:inputOutput>"
        + io_params
        + "</camunda:inputOutput>"
        + mappings
        + "</bpmn:extensionElements>"
    )


def deploy_call(eng: ProcessEngine, tmp_path: Path, body: str) -> None:
    (tmp_path / "parent.bpmn").write_bytes(process("parent", call(body), user("After")))
    (tmp_path / "child.bpmn").write_bytes(
        process("child", service("Work", "child-work"), user("Inside"))
    )
    eng.deploy(tmp_path)


def test_call_activity_input_parameters_and_local_in_out(
    eng: ProcessEngine, make_engine: EngineFactory, tmp_path: Path
) -> None:
    child = Recorder({"result": 7, "scratch": "child only"})
    eng.register_handler("child-work", child)
    body = with_mappings(
        inp("limit", "${amount + 1}") + inp("tag", "call") + out("fromChild", "${childLocal}"),
        '<camunda:in variables="all" local="true" />'
        '<camunda:out source="result" target="childLocal" local="true" />'
        '<camunda:out source="result" target="limit" />',
    )
    deploy_call(eng, tmp_path, body)
    inst = eng.start("parent", {"amount": 5, "other": "caller only"})
    # local="true": only the call activity's locals (its input parameters) pass in.
    assert child.seen == [{"limit": 6, "tag": "call"}]
    assert inst.waiting_at == ["Inside"]
    other = reload(eng, make_engine)
    after = other.complete_task(inst.id, "Inside", {})
    assert after.waiting_at == ["After"]
    # The local out-mapping feeds the output parameter; an out-mapping onto a local's name
    # updates the local, which ends with the call activity.
    assert after.variables == {"amount": 5, "other": "caller only", "fromChild": 7}


def test_call_activity_without_in_out_passes_its_locals_both_ways(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    child = Recorder({"limit": 99, "result": 7})
    eng.register_handler("child-work", child)
    body = with_mappings(inp("limit", "${amount + 1}") + out("seen", "${limit}"), "")
    deploy_call(eng, tmp_path, body)
    inst = eng.start("parent", {"amount": 5})
    assert child.seen == [{"amount": 5, "limit": 6}]
    after = eng.complete_task(inst.id, "Inside", {})
    assert after.variables == {"amount": 5, "result": 7, "seen": 99}


def child_failing(end_with_error: bool) -> bytes:
    if end_with_error:
        return process("child", service("Work", "child-work"), end=ERROR_END, definitions=ERRORS)
    return process("child", service("Work", "child-fail"), definitions=ERRORS)


def parent_with_boundary(body: str) -> bytes:
    return process(
        "parent",
        call(body),
        error_boundary("Call"),
        user("Handle"),
        user("After"),
        flows=[
            ("StartEvent_1", "Call"),
            ("Call", "After"),
            ("After", "EndEvent_1"),
            ("Caught", "Handle"),
            ("Handle", "EndEvent_1"),
        ],
        definitions=ERRORS,
    )


@pytest.mark.parametrize("end_with_error", [True, False], ids=["error-end", "handler-error"])
def test_error_from_called_process_applies_out_mappings(
    eng: ProcessEngine, tmp_path: Path, end_with_error: bool
) -> None:
    eng.register_handler("child-work", Recorder({"result": 7, "scratch": "child only"}))

    def fail(ctx: TaskContext) -> dict[str, Any]:
        raise BpmnError("FAILED", variables={"result": 8, "scratch": "child only"})

    eng.register_handler("child-fail", fail)
    body = with_mappings(
        inp("attempt", "1"),
        '<camunda:in source="amount" target="amount" />'
        '<camunda:out source="result" target="childResult" />'
        '<camunda:out source="result" target="attempt" />',
    )
    (tmp_path / "parent.bpmn").write_bytes(parent_with_boundary(body))
    (tmp_path / "child.bpmn").write_bytes(child_failing(end_with_error))
    eng.deploy(tmp_path)
    inst = eng.start("parent", {"amount": 5})
    # Camunda applies the out mappings when the error leaves the called process; the called
    # process's other variables stay there, and a target that is a local ends with the call.
    assert inst.waiting_at == ["Handle"]
    assert inst.variables == {"amount": 5, "childResult": 7 if end_with_error else 8}


def test_error_from_called_process_without_mappings_leaves_locals_behind(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    eng.register_handler("child-work", Recorder({"result": 7}))
    (tmp_path / "parent.bpmn").write_bytes(parent_with_boundary(io(inp("limit", "3"))))
    (tmp_path / "child.bpmn").write_bytes(child_failing(True))
    eng.deploy(tmp_path)
    inst = eng.start("parent", {"amount": 5})
    assert inst.waiting_at == ["Handle"]
    assert inst.variables == {"amount": 5, "result": 7}


# -- what deploy refuses -----------------------------------------------------------------------


def test_event_and_ad_hoc_subprocess_mappings_are_refused(eng: ProcessEngine) -> None:
    esp = (
        '<bpmn:subProcess id="Esp" triggeredByEvent="true">'
        + io(inp("x", "1"))
        + '<bpmn:startEvent id="EspStart"><bpmn:errorEventDefinition errorRef="Err" />'
        '</bpmn:startEvent><bpmn:endEvent id="EspEnd" />'
        '<bpmn:sequenceFlow id="Fe" sourceRef="EspStart" targetRef="EspEnd" /></bpmn:subProcess>'
    )
    with pytest.raises(DeploymentError, match=r"element 'Esp': .*event subprocess"):
        eng.deploy(process("p1", user("A"), extra=esp, definitions=ERRORS))
    adhoc = (
        '<bpmn:adHocSubProcess id="Adhoc">' + io(inp("x", "1")) + '<bpmn:userTask id="In" />'
        "</bpmn:adHocSubProcess>"
    )
    with pytest.raises(DeploymentError, match=r"element 'Adhoc': camunda:inputOutput on an?"):
        eng.deploy(process("p2", adhoc))
