"""Handlers for ``order.bpmn``: the names its service tasks call.

The payment gateway is simulated: a card number ending in 0 is declined (a business error,
which the process routes to "Notify customer"), and ``flaky_charges`` fail once with a timeout
(a technical error: the caller still gets its answer, a job retries the charge).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import BpmnError, ProcessEngine, TaskContext

flaky_charges: set[str] = set()


def validate_order(ctx: TaskContext) -> Mapping[str, Any]:
    amount = ctx.variables.get("amount")
    if not isinstance(amount, int | float) or amount <= 0:
        raise BpmnError("INVALID_ORDER", f"amount must be positive, got {amount!r}")
    return {"validated": True}


def charge_card(ctx: TaskContext) -> Mapping[str, Any]:
    card = str(ctx.variables.get("card", ""))
    if card.endswith("0"):
        raise BpmnError("CARD_DECLINED", "card declined by issuer", {"declined": True})
    if ctx.idempotency_key in flaky_charges or card in flaky_charges:
        flaky_charges.discard(card)
        raise TimeoutError("payment gateway timed out")
    return {"charged": ctx.variables["amount"], "payment_ref": f"PAY-{ctx.idempotency_key[-8:]}"}


def ship_order(ctx: TaskContext) -> Mapping[str, Any]:
    return {"shipped": True}


def notify_customer(ctx: TaskContext) -> Mapping[str, Any]:
    return {"notified": True}


def register(engine: ProcessEngine) -> None:
    engine.register_handler("validate-order", validate_order)
    engine.register_handler("chargeCard", charge_card)
    engine.register_handler("ship-order", ship_order)
    engine.register_handler("notify-customer", notify_customer)
