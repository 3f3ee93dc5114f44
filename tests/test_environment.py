"""``ProcessEnvironment`` (the ``spillway_env`` fixture): mocked workers and handlers, user
tasks, messages and time travel in one object, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from engine import BpmnError, ProcessEngine, TaskContext
from engine.testing import ManualClock, MockWorker, ProcessEnvironment, assert_that
from tests.bpmnbuild import catch_message, process, service, user

HOUR = 3600
RETRY_TWICE_HOURLY = (
    "<bpmn:extensionElements><camunda:failedJobRetryTimeCycle>R2/PT1H"
    "</camunda:failedJobRetryTimeCycle></bpmn:extensionElements>"
)


def billing(retry: str = "") -> bytes:
    """Bill (external, topic billing) -> Ship (handler ship); a CARD_DECLINED error on Bill
    goes to Notify (external, topic notify)."""
    return process(
        "billing",
        service("Bill", extra='camunda:type="external" camunda:topic="billing"', body=retry),
        '<bpmn:boundaryEvent id="Declined" attachedToRef="Bill">'
        '<bpmn:errorEventDefinition errorRef="Err" /></bpmn:boundaryEvent>',
        service("Ship", handler="ship"),
        service("Notify", extra='camunda:type="external" camunda:topic="notify"'),
        '<bpmn:endEvent id="EndDeclined" />',
        flows=[
            ("StartEvent_1", "Bill"),
            ("Bill", "Ship"),
            ("Ship", "EndEvent_1"),
            ("Declined", "Notify"),
            ("Notify", "EndDeclined"),
        ],
        definitions='<bpmn:error id="Err" errorCode="CARD_DECLINED" />',
    )


@pytest.fixture
def env(eng: ProcessEngine, clock: ManualClock) -> Iterator[ProcessEnvironment]:
    eng.register_handler("ship", lambda ctx: {"shipped": True})
    with ProcessEnvironment(eng, clock) as environment:
        yield environment


def test_a_mocked_worker_completes_tasks_as_they_appear(env: ProcessEnvironment) -> None:
    env.deploy(billing())
    worker = env.mock_worker("billing", {"invoice": "INV-1"})
    inst = env.start("billing", {"amount": 30})
    assert inst.state == "completed"
    assert_that(inst, engine=env.engine).has_passed("Bill", "Ship").has_variables(
        invoice="INV-1", shipped=True
    )
    [ctx] = worker.calls
    assert (ctx.activity_id, ctx.topic, ctx.variables["amount"]) == ("Bill", "billing", 30)
    assert ctx.instance_id == inst.id


def test_tasks_waiting_before_the_mock_are_taken_when_it_is_made(
    env: ProcessEnvironment,
) -> None:
    env.deploy(billing())
    inst = env.start("billing")
    assert inst.waiting_at == ["Bill"]
    env.mock_worker("billing")
    assert env.engine.get_instance(inst.id).state == "completed"


def test_a_worker_answering_with_a_bpmn_error_takes_the_error_path(
    env: ProcessEnvironment,
) -> None:
    env.deploy(billing())
    env.mock_worker("billing", BpmnError("CARD_DECLINED", "no funds", {"reason": "funds"}))
    notify = env.mock_worker("notify", lambda ctx: {"told": ctx.variables["reason"]})
    inst = env.start("billing")
    assert_that(inst, engine=env.engine).is_completed().has_passed("Declined", "Notify")
    assert_that(inst, engine=env.engine).has_not_passed("Ship").has_variables(told="funds")
    assert len(notify.calls) == 1


def test_a_failing_worker_is_retried_by_the_tasks_policy_in_virtual_time(
    env: ProcessEnvironment,
) -> None:
    env.deploy(billing(RETRY_TWICE_HOURLY))
    answers: list[Mapping[str, Any] | Exception] = [TimeoutError("down"), {"invoice": "late"}]

    def flaky(ctx: TaskContext) -> Mapping[str, Any] | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    worker = env.mock_worker("billing", flaky)
    inst = env.start("billing")
    [task] = env.engine.external_tasks.list(instance_id=inst.id)
    assert (task.retries, task.error_message) == (2, "TimeoutError: down")
    assert env.advance(HOUR - 1) == 0  # not due yet
    assert env.advance(1) == 1  # the retry, at its due time
    assert_that(inst, engine=env.engine).is_completed().has_variables(invoice="late")
    assert [c.attempt for c in worker.calls] == [1, 2]


def test_a_worker_failing_for_good_leaves_an_incident(env: ProcessEnvironment) -> None:
    env.deploy(billing(RETRY_TWICE_HOURLY))
    worker = env.mock_worker("billing", ConnectionError("gone"))
    inst = env.start("billing")
    env.advance(3 * HOUR)
    assert len(worker.calls) == 3  # the call and its two retries, an hour apart
    assert_that(inst, engine=env.engine).has_incident(at="Bill", message="ConnectionError")


def test_a_mocked_handler_replaces_the_registered_one_until_close(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.register_handler("ship", lambda ctx: {"shipped": "really"})
    real = eng.handler_for("ship")
    with ProcessEnvironment(eng, clock) as env:
        env.deploy(billing())
        env.mock_worker("billing")
        ship = env.mock_handler("ship", {"shipped": "mocked"})
        inst = env.start("billing")
        assert_that(inst, engine=eng).has_variables(shipped="mocked")
        assert [c.activity_id for c in ship.calls] == ["Ship"]
        env.mock_handler("audit")  # one the engine never had
        assert eng.handler_for("audit") is not None
    assert eng.handler_for("ship") is real
    assert eng.handler_for("audit") is None


def test_a_mocked_handler_may_raise(env: ProcessEnvironment) -> None:
    env.deploy(billing())
    env.mock_worker("billing")
    env.mock_handler("ship", RuntimeError("warehouse closed"))
    inst = env.start("billing")
    assert_that(inst, engine=env.engine).is_waiting_at("Ship").has_job(at="Ship")


def test_a_mocked_handler_lets_a_model_deploy_before_the_real_one_exists(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    with ProcessEnvironment(eng, clock) as env:
        env.mock_handler("price", lambda ctx: {"price": ctx.variables["qty"] * 3})
        env.deploy(process("quote", service("Price", handler="price")))
        inst = env.start("quote", {"qty": 2})
        assert_that(inst, engine=eng).is_completed().has_variables(price=6)


def test_complete_user_task_finds_the_one_task_and_runs_on(env: ProcessEnvironment) -> None:
    env.deploy(process("review", user("Review"), service("Ship", handler="ship")))
    inst = env.start("review")
    done = env.complete_user_task(inst, variables={"ok": True})
    assert done.state == "completed"
    assert done.variables == {"ok": True, "shipped": True}


def test_complete_user_task_by_activity_id_in_the_one_instance_waiting_there(
    env: ProcessEnvironment,
) -> None:
    env.deploy(process("review", user("Review"), service("Ship", handler="ship")))
    inst = env.start("review")
    assert env.complete_user_task("Review").id == inst.id
    assert_that(inst, engine=env.engine).is_completed()
    with pytest.raises(AssertionError, match=r"complete_user_task\('Review'\): 0 instances"):
        env.complete_user_task("Review")


def test_complete_user_task_names_the_candidates_when_it_cannot_choose(
    env: ProcessEnvironment,
) -> None:
    env.deploy(
        process(
            "two",
            '<bpmn:parallelGateway id="Fork"/>',
            user("Left"),
            user("Right"),
            flows=[("StartEvent_1", "Fork"), ("Fork", "Left"), ("Fork", "Right")],
        )
    )
    inst = env.start("two")
    with pytest.raises(AssertionError, match=r"waits at 2 user tasks \(Left, Right\)"):
        env.complete_user_task(inst)
    env.complete_user_task(inst, "Left")
    assert env.engine.get_instance(inst.id).waiting_at == ["Right"]


def test_correlate_delivers_and_the_mocks_take_what_follows(env: ProcessEnvironment) -> None:
    env.deploy(
        process(
            "paid",
            catch_message("Paid", "Msg_Paid"),
            service("Bill", extra='camunda:type="external" camunda:topic="billing"'),
            definitions='<bpmn:message id="Msg_Paid" name="payment" />',
        )
    )
    env.mock_worker("billing", {"billed": True})
    inst = env.start("paid", business_key="A-1")
    assert inst.waiting_at == ["Paid"]
    after = env.correlate("payment", {"sum": 10}, business_key="A-1")
    assert (after.id, after.state) == (inst.id, "completed")
    assert after.variables == {"sum": 10, "billed": True}


def test_advance_stops_at_each_timer(env: ProcessEnvironment) -> None:
    timer = (
        '<bpmn:intermediateCatchEvent id="Wait"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT2H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>"
    )
    env.deploy(process("later", timer, service("Ship", handler="ship")))
    start = env.now()
    inst = env.start("later")
    assert env.advance(HOUR) == 0
    assert env.advance(3 * HOUR) == 1
    assert env.now() == start + timedelta(hours=4)
    [entry] = [h for h in env.engine.history(inst.id) if h.activity_id == "Ship"]
    assert entry.started_at == start + timedelta(hours=2)


def test_a_mock_replaced_by_another_for_the_same_topic(env: ProcessEnvironment) -> None:
    env.deploy(billing())
    first = env.mock_worker("billing", {"n": 1})
    second = env.mock_worker("billing", {"n": 2})
    inst = env.start("billing")
    assert isinstance(second, MockWorker)
    assert (len(first.calls), len(second.calls)) == (0, 1)
    assert env.engine.get_instance(inst.id).variables["n"] == 2


def test_an_environment_needs_the_engines_clock(eng: ProcessEngine) -> None:
    with pytest.raises(ValueError, match="engine's clock"):
        ProcessEnvironment(eng, ManualClock())


def test_create_makes_a_fresh_in_memory_engine() -> None:
    with ProcessEnvironment.create() as env:
        env.mock_handler("ship", {"shipped": 1})
        env.deploy(process("one", service("Ship", handler="ship")))
        inst = env.start("one")
        assert_that(inst).is_completed()  # the environment's engine is the one in use


def test_the_spillway_env_fixture_is_the_process_engine_and_clock(
    spillway_env: ProcessEnvironment, process_engine: ProcessEngine, clock: ManualClock
) -> None:
    assert spillway_env.engine is process_engine
    assert spillway_env.clock is clock
