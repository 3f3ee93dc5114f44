"""DMN input entries are FEEL unary tests, as Camunda Modeler writes them."""

from __future__ import annotations

from typing import Any

import pytest

from engine.bpmn.decisions import unary_test
from engine.core.errors import ExpressionError


@pytest.mark.parametrize(
    ("test", "value", "holds"),
    [
        ("", 5, True),
        ("-", None, True),
        ('"Misc"', "Misc", True),
        ('"Misc"', "Travel", False),
        ('"Travel Expenses","Misc","Software License Costs"', "Misc", True),
        ('"budget", "exceptional"', "day-to-day expense", False),
        ("< 250", 249.99, True),
        ("< 250", 250, False),
        ("<= 250", 250, True),
        ("[250..1000]", 250, True),
        ("[250..1000]", 1000, True),
        ("]250..1000[", 250, False),
        ("(250..1000)", 999, True),
        ("> 1000", 1000.5, True),
        ('not("Misc")', "Misc", False),
        ('not("Misc", "Travel")', "Other", True),
        ("5, [10..20]", 15, True),
        ("true", True, True),
        ("? > limit", 7, True),
        ("limit", 5, True),
        ('"a,b"', "a,b", True),
    ],
)
def test_unary_tests(test: str, value: Any, holds: bool) -> None:
    assert unary_test(test, value, {"limit": 5}, "decision 'd'") is holds


def test_an_unknown_name_is_an_error_naming_the_rule() -> None:
    with pytest.raises(ExpressionError, match="decision 'd', rule 'r1'.*budget"):
        unary_test("< budget", 3, {}, "decision 'd', rule 'r1'")
