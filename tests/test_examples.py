"""The example processes in ``processes/``: every path each one is drawn with."""

from __future__ import annotations

import pytest

from engine import ProcessEngine
from engine.testing import ManualClock
from processes import invoice_handlers, onboarding_handlers, order_handlers, shipment_c8_handlers
from tests.conftest import EXAMPLES


@pytest.fixture
def examples(eng: ProcessEngine) -> ProcessEngine:
    for module in (order_handlers, invoice_handlers, onboarding_handlers, shipment_c8_handlers):
        module.register(eng)
    dep = eng.deploy(EXAMPLES)
    assert {"order", "invoice", "onboarding"} <= set(dep.process_keys)
    return eng


def passed(eng: ProcessEngine, instance_id: str) -> list[str]:
    return [h.activity_id for h in eng.history(instance_id) if h.outcome == "completed"]


def test_order_small_large_and_declined(examples: ProcessEngine) -> None:
    small = examples.start("order", {"amount": 30, "card": "4111"})
    assert small.state == "completed" and small.variables["shipped"] is True
    assert "ApproveOrder" not in passed(examples, small.id)

    large = examples.start("order", {"amount": 5000, "card": "4111"})
    assert large.waiting_at == ["ApproveOrder"]
    large = examples.complete_task(large.id, "ApproveOrder", {"approved_by": "ann"})
    assert large.state == "completed" and large.variables["charged"] == 5000

    declined = examples.start("order", {"amount": 30, "card": "4110"})
    assert declined.state == "completed" and declined.variables["notified"] is True
    assert "EndEvent_Declined" in passed(examples, declined.id)
    assert "Task_Ship" not in passed(examples, declined.id)


def test_order_gateway_timeout_is_retried_by_a_job(
    examples: ProcessEngine, clock: ManualClock
) -> None:
    order_handlers.flaky_charges.add("4222")
    inst = examples.start("order", {"amount": 10, "card": "4222"})
    assert inst.state == "active" and inst.waiting_at == ["Task_Charge"]
    [job] = examples.jobs(inst.id)
    assert job.retries_left == 3  # R3/PT1S on the task
    clock.advance(1)
    assert examples.run_jobs() == 1
    assert examples.get_instance(inst.id).state == "completed"


def test_invalid_order_without_a_boundary_is_an_incident(examples: ProcessEngine) -> None:
    inst = examples.start("order", {"amount": -5, "card": "4111"})
    assert inst.state == "incident" and inst.waiting_at == ["Task_Validate"]
    assert "INVALID_ORDER" in examples.incidents(inst.id)[0].message


def test_invoice_approved_waits_for_the_bank_then_completes(examples: ProcessEngine) -> None:
    lines = [{"qty": 2, "price": 19.5}, {"qty": 1, "price": 61.0}]
    inst = examples.start("invoice", {"invoice_no": "INV-9", "lines": lines})
    assert inst.waiting_at == ["ApproveInvoice"] and inst.variables["total"] == 100.0
    inst = examples.complete_task(inst.id, "ApproveInvoice", {"approved": True})
    assert inst.waiting_at == ["Event_PaymentConfirmed"]
    assert inst.variables["scheduled"] == 100.0
    paid = examples.correlate_message(
        "PaymentConfirmed", {"paid_at": "2030-01-02"}, correlation={"invoice_no": "INV-9"}
    )
    assert paid.id == inst.id and paid.state == "completed" and paid.variables["paid_at"]


def test_invoice_rejected_ends_without_payment(examples: ProcessEngine) -> None:
    inst = examples.start("invoice", {"invoice_no": "INV-10", "lines": []})
    inst = examples.complete_task(inst.id, "ApproveInvoice", {"approved": False})
    assert inst.state == "completed"
    assert "EndEvent_Rejected" in passed(examples, inst.id)
    assert "Task_SchedulePayment" not in passed(examples, inst.id)


def test_onboarding_orders_the_laptop_in_a_job(examples: ProcessEngine) -> None:
    inst = examples.start("onboarding", {"name": "Ada Lovelace", "manager": "grace"})
    assert inst.waiting_at == ["Task_OrderLaptop"] and inst.variables["login"] == "ada.lovelace"
    assert examples.run_jobs() == 1
    inst = examples.get_instance(inst.id)
    assert inst.waiting_at == ["WelcomeCall"] and inst.variables["laptop_order"].startswith("LAP-")
    assert examples.complete_task(inst.id, "WelcomeCall").state == "completed"
