"""Handlers for ``onboarding.bpmn``.

"Order laptop" is ``camunda:asyncBefore``: hiring someone commits at once and the supplier is
called by the job executor, retried every minute up to five times (``R5/PT1M``) if it is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import ProcessEngine, TaskContext


def create_account(ctx: TaskContext) -> Mapping[str, Any]:
    name = str(ctx.variables["name"])
    return {"login": name.lower().replace(" ", ".")}


def order_laptop(ctx: TaskContext) -> Mapping[str, Any]:
    return {"laptop_order": f"LAP-{ctx.idempotency_key[-6:]}"}


def register(engine: ProcessEngine) -> None:
    engine.register_handler("create-account", create_account)
    engine.register_handler("order-laptop", order_laptop)
