"""Process tests for ``processes/order.bpmn``, written only with the Spillway pytest plugin
(fixtures ``process_engine`` and ``clock``, ``assert_that`` and the helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.testing import ManualClock, advance_and_run, assert_that, fails_times
from processes import order_handlers

ORDER = Path(__file__).parents[2] / "processes" / "order.bpmn"


@pytest.fixture
def order(process_engine: ProcessEngine) -> ProcessEngine:
    order_handlers.register(process_engine)
    process_engine.deploy(ORDER)
    return process_engine


def test_small_order_is_charged_and_shipped(order: ProcessEngine) -> None:
    inst = order.start("order", {"amount": 30, "card": "4111"}, business_key="A-17")
    assert_that(inst).is_completed().has_not_passed("ApproveOrder")
    assert_that(inst).has_passed_in_order(
        "Task_Validate", "Gateway_Amount", "Task_Charge", "Task_Ship", "EndEvent_Shipped"
    )
    assert_that(inst).has_variables("payment_ref", validated=True, charged=30, shipped=True)


def test_large_order_waits_for_approval(order: ProcessEngine) -> None:
    inst = order.start("order", {"amount": 5000, "card": "4111"})
    assert_that(inst).is_active().is_waiting_exactly_at("ApproveOrder")
    assert_that(inst).has_not_passed("Task_Charge").has_no_variables("charged")

    order.complete_task(inst.id, "ApproveOrder", {"approved_by": "ann"})
    assert_that(inst).is_completed().has_passed_in_order("ApproveOrder", "Task_Charge")
    assert_that(inst).has_variables(approved_by="ann", charged=5000, shipped=True)


def test_declined_card_notifies_the_customer(order: ProcessEngine) -> None:
    inst = order.start("order", {"amount": 30, "card": "4110"})
    assert_that(inst).is_completed().has_no_incident()
    assert_that(inst).has_passed("Event_CardDeclined", "Task_NotifyDeclined", "EndEvent_Declined")
    assert_that(inst).has_not_passed("Task_Charge", "Task_Ship", "EndEvent_Shipped")
    assert_that(inst).has_variables(declined=True, notified=True).has_no_variables("charged")


def test_gateway_timeouts_are_retried_every_second(
    order: ProcessEngine, clock: ManualClock
) -> None:
    # The call itself and the first retry time out; R3/PT1S retries every second.
    order.register_handler(
        "chargeCard", fails_times(2, result=order_handlers.charge_card, error=TimeoutError)
    )
    inst = order.start("order", {"amount": 10, "card": "4111"})
    assert_that(inst).is_active().is_waiting_at("Task_Charge")
    assert_that(inst).has_job(at="Task_Charge", kind="async-continuation")

    assert advance_and_run(clock, order, 1) == 1
    assert_that(inst).is_waiting_at("Task_Charge").has_not_passed("Task_Charge")
    assert advance_and_run(clock, order, 1) == 1
    assert_that(inst).is_completed().has_passed("Task_Charge", "Task_Ship")
    assert_that(inst).has_variables(charged=10)


def test_gateway_down_for_good_is_an_incident_an_operator_retries(
    order: ProcessEngine, clock: ManualClock
) -> None:
    # One synchronous attempt and three retries fail; the fifth call gets through.
    charge = fails_times(4, result=order_handlers.charge_card, error=TimeoutError)
    order.register_handler("chargeCard", charge)
    inst = order.start("order", {"amount": 10, "card": "4111"})
    advance_and_run(clock, order, 60)
    assert_that(inst).has_incident(at="Task_Charge", message="TimeoutError")
    assert_that(inst).is_waiting_at("Task_Charge").has_not_passed("Task_Ship")
    assert len(charge.calls) == 4

    [incident] = order.incidents(inst.id)
    order.retry(incident.id)
    assert order.run_jobs() == 1
    assert_that(inst).is_completed().has_no_incident().has_passed("Task_Ship")


def test_invalid_amount_is_an_incident_without_retries(order: ProcessEngine) -> None:
    inst = order.start("order", {"amount": -5, "card": "4111"})
    assert_that(inst).has_incident(at="Task_Validate", message="INVALID_ORDER")
    assert_that(inst).is_waiting_exactly_at("Task_Validate").has_not_passed("Task_Charge")
