"""An instance update sets the columns it changes, and leaves out only those that still hold
the stored row's value (SQLite rewrites the index entries of every column an UPDATE sets)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.storage.write import InstanceWrite, update_values

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def stored() -> dict[str, Any]:
    return {
        "id": "i",
        "definition_id": "p:1:a",
        "process_key": "p",
        "version": 1,
        "business_key": None,
        "state": "active",
        "format": 1,
        "ended_at": None,
        "rev": 3,
        "variables": {"n": 1},
    }


def test_unchanged_scalar_columns_are_left_out_and_changed_ones_set() -> None:
    row = stored()
    instance = {**row, "state": "completed", "ended_at": NOW, "rev": 4, "variables": {"n": 1}}
    values = update_values(InstanceWrite(instance=instance, expected_rev=3, stored_row=row))
    assert values == {
        "state": "completed",
        "ended_at": NOW,
        "rev": 4,
        "variables": {"n": 1},  # JSON columns are always set: 1 == True would hide a change
        "b_id": "i",
        "b_rev": 3,
    }


def test_a_value_equal_but_of_another_type_is_set() -> None:
    row = stored()
    instance = {**row, "version": True, "rev": 4}
    values = update_values(InstanceWrite(instance=instance, expected_rev=3, stored_row=row))
    assert values["version"] is True


def test_without_the_stored_row_every_column_is_set() -> None:
    row = stored()
    values = update_values(InstanceWrite(instance={**row, "rev": 4}, expected_rev=3))
    assert set(values) == (set(row) - {"id"}) | {"b_id", "b_rev"}
