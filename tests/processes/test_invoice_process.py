"""Process tests for ``processes/invoice.bpmn``, written only with the Spillway pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.testing import assert_that
from processes import invoice_handlers

INVOICE = Path(__file__).parents[2] / "processes" / "invoice.bpmn"
LINES = [{"qty": 2, "price": 19.5}, {"qty": 1, "price": 61.0}]


@pytest.fixture
def invoice(process_engine: ProcessEngine) -> ProcessEngine:
    invoice_handlers.register(process_engine)
    process_engine.deploy(INVOICE)
    return process_engine


def test_approved_invoice_is_paid_when_the_bank_confirms(invoice: ProcessEngine) -> None:
    inst = invoice.start("invoice", {"invoice_no": "INV-9", "lines": LINES})
    assert_that(inst).is_waiting_exactly_at("ApproveInvoice")
    assert_that(inst).has_variables(total=100.0, line_count=2)

    invoice.complete_task(inst.id, "ApproveInvoice", {"approved": True})
    assert_that(inst).is_waiting_exactly_at("Event_PaymentConfirmed")
    assert_that(inst).has_passed("Task_SchedulePayment").has_variables("payment_order")

    invoice.correlate_message(
        "PaymentConfirmed", {"paid_at": "2030-01-02"}, correlation={"invoice_no": "INV-9"}
    )
    assert_that(inst).is_completed().has_passed("Event_PaymentConfirmed", "EndEvent_Paid")
    assert_that(inst).has_variables(paid_at="2030-01-02", scheduled=100.0)


def test_rejected_invoice_ends_without_payment(invoice: ProcessEngine) -> None:
    inst = invoice.start("invoice", {"invoice_no": "INV-10", "lines": []})
    invoice.complete_task(inst.id, "ApproveInvoice", {"approved": False})
    assert_that(inst).is_completed().has_passed_in_order("ApproveInvoice", "EndEvent_Rejected")
    assert_that(inst).has_not_passed("Task_SchedulePayment", "EndEvent_Paid")
    assert_that(inst).has_variables(total=0, line_count=0).has_no_variables("payment_order")


def test_the_bank_confirmation_reaches_only_its_invoice(invoice: ProcessEngine) -> None:
    first = invoice.start("invoice", {"invoice_no": "INV-1", "lines": LINES})
    second = invoice.start("invoice", {"invoice_no": "INV-2", "lines": LINES})
    for inst in (first, second):
        invoice.complete_task(inst.id, "ApproveInvoice", {"approved": True})

    invoice.correlate_message("PaymentConfirmed", correlation={"invoice_no": "INV-2"})
    assert_that(second).is_completed()
    assert_that(first).is_waiting_exactly_at("Event_PaymentConfirmed")
