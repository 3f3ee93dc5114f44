"""Engine core: deploy, start, run service tasks synchronously, wait states, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import (
    BpmnError,
    CorrelationError,
    DeploymentError,
    HandlerError,
    InvalidVariables,
    NotFound,
    ProcessEngine,
    TaskContext,
)
from engine.core.errors import ConcurrencyConflict
from engine.storage.write import InstanceWrite
from tests.bpmnbuild import catch_message, process, service, user

MESSAGES = '<bpmn:message id="Msg_Paid" name="PaymentReceived" />'


def two_tasks(pid: str = "p") -> bytes:
    return process(pid, service("A", "a"), service("B", "b"))


def register_ab(eng: ProcessEngine, calls: list[str]) -> None:
    @eng.handler("a")
    def a(ctx: TaskContext) -> dict[str, object]:
        calls.append("a")
        return {"a_done": True, "seen": ctx.variables.get("amount")}

    @eng.handler("b")
    def b(ctx: TaskContext) -> dict[str, object]:
        calls.append("b")
        assert ctx.variables["a_done"] is True
        return {"b_done": ctx.attempt}


def table_counts(eng: ProcessEngine) -> dict[str, int]:
    import sqlalchemy as sa

    from engine.storage import schema

    with eng.store.transaction(write=False) as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in schema.metadata.sorted_tables
        }


def test_start_runs_service_tasks_to_the_end_and_persists(eng: ProcessEngine) -> None:
    calls: list[str] = []
    register_ab(eng, calls)
    dep = eng.deploy(two_tasks())
    assert dep.process_keys == ("p",)
    inst = eng.start("p", variables={"amount": 30}, business_key="A-17")
    assert calls == ["a", "b"]
    assert inst.state == "completed"
    fresh = eng.get_instance(inst.id)
    assert fresh.state == "completed"
    assert fresh.variables == {"amount": 30, "a_done": True, "seen": 30, "b_done": 1}
    assert fresh.business_key == "A-17"
    assert fresh.waiting_at == []
    hist = eng.history(inst.id)
    assert [h.activity_id for h in hist] == ["StartEvent_1", "A", "B", "EndEvent_1"]
    assert all(h.outcome == "completed" and h.ended_at is not None for h in hist)
    assert hist[1].activity_type == "serviceTask"


def test_handler_context_and_read_only_variables(eng: ProcessEngine) -> None:
    seen: list[TaskContext] = []

    @eng.handler("a")
    def a(ctx: TaskContext) -> None:
        seen.append(ctx)
        with pytest.raises(TypeError):
            ctx.variables["x"] = 1  # type: ignore[index]
        ctx.variables["nested"]["changed"] = True  # a private copy: no effect on the process

    eng.register_handler("b", lambda ctx: None)
    eng.deploy(two_tasks())
    inst = eng.start("p", variables={"nested": {}}, business_key="BK")
    ctx = seen[0]
    assert (ctx.instance_id, ctx.activity_id, ctx.business_key, ctx.attempt) == (
        inst.id,
        "A",
        "BK",
        1,
    )
    assert ctx.idempotency_key.startswith(inst.id)
    assert eng.get_instance(inst.id).variables == {"nested": {}}


def test_redeploy_unchanged_returns_existing_changed_gets_next_version(
    eng: ProcessEngine,
) -> None:
    register_ab(eng, [])
    first = eng.deploy(two_tasks())
    again = eng.deploy(two_tasks())
    assert again.id == first.id and again.existing
    assert again.versions == {"p": 1}
    eng.register_handler("c", lambda ctx: {"c": 1})
    eng.register_handler("wait", lambda ctx: None)
    v1_waiting = process("p", service("A", "a"), user("Review"))
    dep_v2 = eng.deploy(v1_waiting)
    assert dep_v2.versions == {"p": 2}
    running = eng.start("p")
    assert running.version == 2 and running.waiting_at == ["Review"]
    dep_v3 = eng.deploy(process("p", service("A", "a"), user("Review"), service("C", "c")))
    assert dep_v3.versions == {"p": 3}
    # The running instance stays on version 2: completing it does not reach C.
    done = eng.complete_task(running.id, "Review")
    assert done.version == 2 and done.state == "completed" and "c" not in done.variables
    assert eng.start("p").version == 3


def test_missing_handlers_fail_deploy_listing_every_task(eng: ProcessEngine) -> None:
    bpmn = process("p", service("A", "a"), service("B", "b"), service("C", "a"))
    before = table_counts(eng)
    with pytest.raises(DeploymentError) as err:
        eng.deploy(bpmn)
    text = str(err.value)
    for task, handler in (("A", "a"), ("B", "b"), ("C", "a")):
        assert f"task '{task}' calls handler '{handler}'" in text
    assert "<bytes>" in text
    assert len(err.value.problems) == 3
    assert table_counts(eng) == before


def test_lazy_handlers_deploy_and_fail_when_reached(make_engine: object) -> None:
    eng = make_engine(lazy_handlers=True, async_on_error=False)  # type: ignore[operator]
    eng.deploy(two_tasks())
    with pytest.raises(HandlerError, match="no handler registered under 'a'"):
        eng.start("p")
    assert eng.instances() == []


def test_user_task_wait_and_complete(eng: ProcessEngine) -> None:
    eng.register_handler("a", lambda ctx: {"approved_by": None})
    eng.deploy(process("p", user("Approve"), service("A", "a")))
    inst = eng.start("p")
    assert inst.state == "active" and inst.waiting_at == ["Approve"]
    done = eng.complete_task(inst.id, "Approve", variables={"ok": True})
    assert done.state == "completed"
    assert done.variables["ok"] is True
    hist = {h.activity_id: h for h in eng.history(inst.id)}
    assert hist["Approve"].outcome == "completed" and hist["Approve"].ended_at is not None


def test_complete_unknown_task_is_not_found_and_changes_nothing(eng: ProcessEngine) -> None:
    eng.deploy(process("p", user("Approve")))
    inst = eng.start("p")
    before = eng.store.instance(inst.id)
    with pytest.raises(NotFound, match="'Nope'.*waiting at: Approve"):
        eng.complete_task(inst.id, "Nope")
    with pytest.raises(NotFound):
        eng.complete_task("no-such-instance", "Approve")
    assert eng.store.instance(inst.id) == before


def test_bpmn_error_is_caught_by_boundary_event(eng: ProcessEngine) -> None:
    @eng.handler("charge")
    def charge(ctx: TaskContext) -> None:
        raise BpmnError("CARD_DECLINED", "limit", variables={"reason": "limit"})

    bpmn = process(
        "p",
        service("Charge", "charge"),
        '<bpmn:boundaryEvent id="Declined" attachedToRef="Charge">'
        '<bpmn:errorEventDefinition errorRef="Err" /></bpmn:boundaryEvent>',
        user("Notify"),
        '<bpmn:endEvent id="EndOk" />',
        start='<bpmn:startEvent id="StartEvent_1" />',
        end="",
        flows=[("StartEvent_1", "Charge"), ("Charge", "EndOk"), ("Declined", "Notify")],
        definitions='<bpmn:error id="Err" errorCode="CARD_DECLINED" />',
    )
    eng.deploy(bpmn)
    inst = eng.start("p")
    assert inst.waiting_at == ["Notify"]
    outcomes = {h.activity_id: h.outcome for h in eng.history(inst.id)}
    assert outcomes["Charge"] == "error"


def test_sync_failure_raises_and_commits_nothing(make_engine: object) -> None:
    eng = make_engine(async_on_error=False)  # type: ignore[operator]

    @eng.handler("a")
    def a(ctx: TaskContext) -> None:
        raise RuntimeError("payment service down")

    eng.deploy(process("p", user("First"), service("A", "a")))
    with pytest.raises(HandlerError, match="payment service down"):
        eng.deploy(process("q", service("A", "a"))) and eng.start("q")
    assert eng.instances(process_key="q") == []
    inst = eng.start("p")
    before = eng.store.instance(inst.id)
    history_before = eng.history(inst.id)
    with pytest.raises(HandlerError) as err:
        eng.complete_task(inst.id, "First", variables={"x": 1})
    assert err.value.activity_id == "A"
    assert isinstance(err.value.__cause__, RuntimeError)
    assert eng.store.instance(inst.id) == before
    assert eng.history(inst.id) == history_before
    assert eng.jobs() == []


def test_parallel_branches_both_run(eng: ProcessEngine) -> None:
    eng.register_handler("a", lambda ctx: {"left": 1})
    eng.register_handler("b", lambda ctx: {"right": 2})
    bpmn = process(
        "p",
        '<bpmn:parallelGateway id="Split" />',
        service("A", "a"),
        service("B", "b"),
        '<bpmn:parallelGateway id="Join" />',
        flows=[
            ("StartEvent_1", "Split"),
            ("Split", "A"),
            ("Split", "B"),
            ("A", "Join"),
            ("B", "Join"),
            ("Join", "EndEvent_1"),
        ],
    )
    eng.deploy(bpmn)
    inst = eng.start("p")
    assert inst.state == "completed"
    assert inst.variables["left"] == 1 and inst.variables["right"] == 2


def test_exclusive_gateway_with_juel_conditions(eng: ProcessEngine) -> None:
    bpmn = process(
        "p",
        '<bpmn:exclusiveGateway id="Gw" default="Flow_small" />',
        user("Big"),
        user("Small"),
        start='<bpmn:startEvent id="StartEvent_1" />',
        end="",
        flows=[("StartEvent_1", "Gw"), ("Gw", "Big", "${amount > 1000}")],
        extra='<bpmn:sequenceFlow id="Flow_small" sourceRef="Gw" targetRef="Small" />',
    )
    eng.deploy(bpmn)
    assert eng.start("p", variables={"amount": 5000}).waiting_at == ["Big"]
    assert eng.start("p", variables={"amount": 5}).waiting_at == ["Small"]


def test_message_correlation_by_variables_and_business_key(eng: ProcessEngine) -> None:
    bpmn = process("p", catch_message("WaitPaid", "Msg_Paid"), definitions=MESSAGES)
    eng.deploy(bpmn)
    one = eng.start("p", variables={"order_id": "A-1"}, business_key="k1")
    two = eng.start("p", variables={"order_id": "A-2"}, business_key="k2")
    assert one.waiting_at == ["WaitPaid"]
    with pytest.raises(CorrelationError, match="matches 2 instances"):
        eng.correlate_message("PaymentReceived")
    with pytest.raises(CorrelationError, match="no instance waits"):
        eng.correlate_message("PaymentReceived", correlation={"order_id": "nope"})
    done = eng.correlate_message(
        "PaymentReceived", variables={"paid": 10}, correlation={"order_id": "A-2"}
    )
    assert done.id == two.id and done.state == "completed" and done.variables["paid"] == 10
    by_key = eng.correlate_message("PaymentReceived", business_key="k1")
    assert by_key.id == one.id and by_key.state == "completed"
    with pytest.raises(CorrelationError):
        eng.correlate_message("PaymentReceived", business_key="k1")


def test_message_start_event_starts_a_new_instance(eng: ProcessEngine) -> None:
    eng.register_handler("a", lambda ctx: {"handled": ctx.variables["order"]})
    bpmn = process(
        "p",
        service("A", "a"),
        user("Ship"),
        start='<bpmn:startEvent id="StartEvent_1"><bpmn:messageEventDefinition '
        'messageRef="Msg_Order" /></bpmn:startEvent>',
        definitions='<bpmn:message id="Msg_Order" name="OrderPlaced" />',
    )
    eng.deploy(bpmn)
    inst = eng.correlate_message("OrderPlaced", variables={"order": "X"}, business_key="B-1")
    assert inst.process_key == "p" and inst.business_key == "B-1"
    assert inst.variables["handled"] == "X" and inst.waiting_at == ["Ship"]


def test_call_activity_across_files_of_a_folder(eng: ProcessEngine, tmp_path: Path) -> None:
    eng.register_handler("child-work", lambda ctx: {"child": ctx.variables["n"] * 2})
    (tmp_path / "parent.bpmn").write_bytes(
        process("parent", '<bpmn:callActivity id="Call" calledElement="child" />')
    )
    (tmp_path / "child.bpmn").write_bytes(process("child", service("Work", "child-work")))
    dep = eng.deploy(tmp_path)
    assert set(dep.process_keys) == {"parent", "child"}
    inst = eng.start("parent", variables={"n": 21})
    assert inst.state == "completed" and inst.variables["child"] == 42


def test_instances_filters(eng: ProcessEngine) -> None:
    eng.deploy(process("p", user("U")))
    eng.deploy(process("q"))
    a = eng.start("p", business_key="x")
    eng.start("p", business_key="y")
    eng.start("q", business_key="x")
    assert len(eng.instances()) == 3
    assert {i.id for i in eng.instances(process_key="p", business_key="x")} == {a.id}
    assert len(eng.instances(state="completed")) == 1
    assert len(eng.instances(state="active", process_key="p")) == 2


def test_start_takes_the_version_another_node_just_deployed_or_deleted(
    make_engine: object,
) -> None:
    # Each node caches definition rows; which one is the latest is asked of the database.
    deployer = make_engine()  # type: ignore[operator]
    starter = make_engine()  # type: ignore[operator]
    deployer.deploy(process("p", user("V1")))
    assert starter.start("p").waiting_at == ["V1"]
    v2 = deployer.deploy(process("p", user("V2")))
    first = starter.start("p")
    assert (first.version, first.waiting_at) == (2, ["V2"])
    deployer.cancel(first.id)
    deployer.delete_deployment(v2.id, cascade=True)
    again = starter.start("p")
    assert (again.version, again.waiting_at) == (1, ["V1"])
    v3 = deployer.deploy(process("p", user("V3")))  # version 2 again, another definition
    assert v3.versions == {"p": 2}
    assert starter.start("p").waiting_at == ["V3"]


def test_stale_write_loses_the_optimistic_lock(make_engine: object) -> None:
    first = make_engine()  # type: ignore[operator]
    second = make_engine()  # type: ignore[operator]
    first.deploy(process("p", user("U1"), user("U2")))
    inst = first.start("p")
    stale = first.store.instance(inst.id)
    second.complete_task(inst.id, "U1")
    assert stale is not None
    write = InstanceWrite(instance=dict(stale, rev=stale["rev"] + 1), expected_rev=stale["rev"])
    with pytest.raises(ConcurrencyConflict):
        first.store.apply(write)
    assert first.get_instance(inst.id).waiting_at == ["U2"]


def test_state_survives_a_new_engine(db_url: str, clock: object) -> None:
    one = ProcessEngine(db_url, clock=clock)  # type: ignore[arg-type]
    one.register_handler("a", lambda ctx: None)
    one.deploy(process("p", user("U"), service("A", "a")), name="demo")
    inst = one.start("p", variables={"k": [1, 2, {"x": None}]})
    one.close()
    two = ProcessEngine(db_url, clock=clock)  # type: ignore[arg-type]
    two.register_handler("a", lambda ctx: {"after": True})
    done = two.complete_task(inst.id, "U")
    assert done.state == "completed" and done.variables["k"] == [1, 2, {"x": None}]
    two.close()


@pytest.mark.parametrize(
    ("variables", "culprit"),
    [
        ({"when": object()}, "'when'"),
        ({"order": {"items": [1, {"bad": {1, 2}}]}}, "'order.items[1].bad'"),
        ({"x": float("nan")}, "'x'"),
        ({1: "x"}, "1"),
    ],
)
def test_non_json_variables_are_refused_naming_the_variable(
    eng: ProcessEngine, variables: dict[object, object], culprit: str
) -> None:
    eng.deploy(process("p", user("U")))
    inst = eng.start("p")
    before = table_counts(eng)
    with pytest.raises(InvalidVariables, match=culprit.replace("[", r"\[").replace("]", r"\]")):
        eng.start("p", variables=variables)  # type: ignore[arg-type]
    with pytest.raises(InvalidVariables):
        eng.complete_task(inst.id, "U", variables=variables)  # type: ignore[arg-type]
    assert table_counts(eng) == before


def test_handler_returning_bad_variables_is_a_failure_naming_it(make_engine: object) -> None:
    eng = make_engine(async_on_error=False)  # type: ignore[operator]
    eng.register_handler("a", lambda ctx: {"at": object()})
    eng.deploy(process("p", service("A", "a")))
    with pytest.raises(HandlerError, match="handler 'a' of task 'A'.*'at'"):
        eng.start("p")


def test_unknown_process_key(eng: ProcessEngine) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        eng.start("nope")
