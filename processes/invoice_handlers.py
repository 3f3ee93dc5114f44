"""Handlers for ``invoice.bpmn``: extract the invoice, schedule its payment.

The payment itself is confirmed later by the bank: the process waits at "Payment confirmed"
until ``correlate_message("PaymentConfirmed", correlation={"invoice_no": ...})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import ProcessEngine, TaskContext


def extract_invoice(ctx: TaskContext) -> Mapping[str, Any]:
    lines = ctx.variables.get("lines", [])
    total = round(sum(line["qty"] * line["price"] for line in lines), 2)
    return {"total": total, "line_count": len(lines)}


def schedule_payment(ctx: TaskContext) -> Mapping[str, Any]:
    # The idempotency key lets the bank drop a duplicate order if this call is retried.
    return {"payment_order": f"PO-{ctx.idempotency_key[-10:]}", "scheduled": ctx.variables["total"]}


def register(engine: ProcessEngine) -> None:
    engine.register_handler("extract-invoice", extract_invoice)
    engine.register_handler("schedulePayment", schedule_payment)
