"""Handlers of ``processes/shipment_c8.bpmn``, a Camunda 8 model as Camunda Modeler writes it.

The job types of its ``zeebe:taskDefinition`` elements are the handler names; the task headers
arrive as ``ctx.properties``; FEEL input mappings have prepared ``ctx.variables``.
"""

from __future__ import annotations

from typing import Any

from engine import ProcessEngine
from engine.core.values import TaskContext

RATE_PER_KG = {"DHL": 4.0, "UPS": 5.0}
notifications: list[str] = []


def quote_shipping(ctx: TaskContext) -> dict[str, Any]:
    """``weight`` is the input mapping ``=sum(items.weight)``; ``carrier`` a task header."""
    rate = RATE_PER_KG[str(ctx.properties["carrier"])]
    return {"quote": {"price": round(float(ctx.variables["weight"]) * rate, 2)}}


def pack_item(ctx: TaskContext) -> dict[str, Any]:
    """Runs once per element of ``items`` (``inputElement="item"``)."""
    return {"label": f"PKG-{ctx.variables['item']['sku']}"}


def record_approval(ctx: TaskContext) -> dict[str, Any]:
    """The approver's completion passes here (a ``completing`` task listener)."""
    return {"approval_recorded": ctx.event}


def notify_shipped(ctx: TaskContext) -> None:
    notifications.append(f"{ctx.variables['orderId']}: {ctx.variables['parcels']} parcel(s)")


def register(engine: ProcessEngine) -> None:
    engine.register_handler("quote-shipping", quote_shipping)
    engine.register_handler("pack-item", pack_item)
    engine.register_handler("record-approval", record_approval)
    engine.register_handler("notify-shipped", notify_shipped)
