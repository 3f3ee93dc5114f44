"""Process tests for ``processes/onboarding.bpmn``, written only with the Spillway pytest
plugin. "Order laptop" is asyncBefore with ``R5/PT1M`` retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.testing import ManualClock, advance_and_run, assert_that, fails_times
from processes import onboarding_handlers

ONBOARDING = Path(__file__).parents[2] / "processes" / "onboarding.bpmn"
HIRED = {"name": "Ada Lovelace", "manager": "grace"}


@pytest.fixture
def onboarding(process_engine: ProcessEngine) -> ProcessEngine:
    onboarding_handlers.register(process_engine)
    process_engine.deploy(ONBOARDING)
    return process_engine


def test_hiring_commits_first_and_a_job_orders_the_laptop(onboarding: ProcessEngine) -> None:
    inst = onboarding.start("onboarding", HIRED)
    assert_that(inst).is_waiting_exactly_at("Task_OrderLaptop").has_passed("Task_CreateAccount")
    assert_that(inst).has_job(at="Task_OrderLaptop").has_variables(login="ada.lovelace")
    assert_that(inst).has_not_passed("Task_OrderLaptop")

    assert onboarding.run_jobs() == 1
    assert_that(inst).is_waiting_exactly_at("WelcomeCall").has_variables("laptop_order")
    onboarding.complete_task(inst.id, "WelcomeCall")
    assert_that(inst).is_completed().has_passed_in_order("Gateway_Join", "WelcomeCall")


def test_supplier_down_for_three_minutes(onboarding: ProcessEngine, clock: ManualClock) -> None:
    laptop = fails_times(3, result=onboarding_handlers.order_laptop, error=ConnectionError)
    onboarding.register_handler("order-laptop", laptop)
    inst = onboarding.start("onboarding", HIRED)

    assert advance_and_run(clock, onboarding, 0) == 1  # the first try fails
    assert_that(inst).is_waiting_at("Task_OrderLaptop").has_no_incident()
    assert advance_and_run(clock, onboarding, 180) == 3  # +1, +2 minutes fail; +3 succeeds
    assert_that(inst).is_waiting_exactly_at("WelcomeCall").has_variables("laptop_order")
    assert [c.attempt for c in laptop.calls] == [1, 2, 3, 4]


def test_supplier_down_for_good_is_an_incident(
    onboarding: ProcessEngine, clock: ManualClock
) -> None:
    onboarding.register_handler("order-laptop", fails_times(100, error=ConnectionError))
    inst = onboarding.start("onboarding", HIRED)
    advance_and_run(clock, onboarding, 3600)
    assert_that(inst).has_incident(at="Task_OrderLaptop", message="ConnectionError")
    assert_that(inst).is_waiting_exactly_at("Task_OrderLaptop").has_not_passed("WelcomeCall")
