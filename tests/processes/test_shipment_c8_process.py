"""Process tests for ``processes/shipment_c8.bpmn`` (Camunda 8, zeebe extensions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.testing import ManualClock, advance_and_run, assert_that
from processes import shipment_c8_handlers

SHIPMENT = Path(__file__).parents[2] / "processes" / "shipment_c8.bpmn"
ITEMS = [{"sku": "A1", "weight": 2}, {"sku": "B2", "weight": 3.5}]


@pytest.fixture
def shipment(process_engine: ProcessEngine) -> ProcessEngine:
    shipment_c8_handlers.register(process_engine)
    shipment_c8_handlers.notifications.clear()
    process_engine.deploy(SHIPMENT)
    return process_engine


def test_cheap_shipment_is_packed_per_item_and_waits_for_pickup(shipment: ProcessEngine) -> None:
    inst = shipment.start("shipment", {"orderId": "A-1", "items": ITEMS[:1]})
    # weight = sum(items.weight) = 2 -> 8.0 with DHL (a task header): not over 100.
    assert_that(inst).is_waiting_exactly_at("Catch_Pickup").has_not_passed("Task_Approve")
    assert_that(inst).has_variables(price=8.0, labels=["PKG-A1"], parcels=1)
    assert_that(inst).has_no_variables("weight", "item", "label")  # locals stay local
    shipment.correlate_message("pickup-confirmed", correlation={"orderId": "A-1"})
    assert_that(inst).is_completed().has_passed("End_Shipped")
    assert shipment_c8_handlers.notifications == ["A-1: 1 parcel(s)"]


def test_expensive_shipment_needs_approval(shipment: ProcessEngine) -> None:
    heavy = [{"sku": "H", "weight": 30}]
    inst = shipment.start(
        "shipment",
        {"orderId": "B-2", "items": heavy, "requester": "ann", "approvalTimeout": "PT2H"},
    )
    assert_that(inst).is_waiting_exactly_at("Task_Approve").has_variables(price=120.0)
    shipment.complete_task(inst.id, "Task_Approve", {"approved": True})
    assert_that(inst).has_variables(approval_recorded="complete", labels=["PKG-H"])
    assert_that(inst).is_waiting_exactly_at("Catch_Pickup")


def test_unapproved_shipment_expires(shipment: ProcessEngine, clock: ManualClock) -> None:
    heavy = [{"sku": "H", "weight": 30}]
    inst = shipment.start(
        "shipment",
        {"orderId": "C-3", "items": heavy, "requester": "ann", "approvalTimeout": "PT2H"},
    )
    advance_and_run(clock, shipment, 2 * 3600 + 1)
    assert_that(inst).is_completed().has_passed("End_Expired").has_not_passed("Task_Pack")
