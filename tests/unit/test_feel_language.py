"""FEEL as Camunda 8 files use it: textual forms, filters, contexts, built-ins, temporal values."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.errors import ExpressionError
from engine.expressions import feel

ORDER = {
    "orderId": 7,
    "orderItems": [
        {"item": {"type": "hardware"}, "price": 10, "reocurring": None},
        {"item": {"type": "mobile"}, "price": 5.5, "reocurring": "monthly"},
        {"item": {"type": "mobile"}, "price": 2, "reocurring": "monthly"},
    ],
    "route": "Legal",
    "response": {"body": {"labels": ["a", "b"], "users": [{"id": 1, "name": "ann"}]}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=sum(orderItems[reocurring = null].price)", 10),
        ('=sum(orderItems[reocurring = "monthly"].price)', 7.5),
        ('=count(orderItems[item.type = "mobile"])', 2),
        ("=orderItems[1].price", 10),
        ("=orderItems[-1].price", 2),
        ("=response.body.labels[2]", "b"),
        ('=if route = "Legal" then "L" else "X"', "L"),
        ("=if is defined(missing) then missing else orderId", 7),
        (
            "=for u in response.body.users return {id: u.id, name: upper case(u.name)}",
            [{"id": 1, "name": "ANN"}],
        ),
        ("=for i in 1..3 return i * 2", [2, 4, 6]),
        ("=some p in orderItems.price satisfies p > 9", True),
        ("=every p in orderItems.price satisfies p > 9", False),
        ('=matches(route, "legal|sales", "i")', True),
        ('=string(orderId) + "_" + substring before("a-b", "-")', "7_a"),
        ('=substring("hello", 2, 3)', "ell"),
        ('=string join(["a", "b"], ", ")', "a, b"),
        ('=split("a1b2c", "\\d")', ["a", "b", "c"]),
        ('=get value({"x-token": 1}, "x-token")', 1),
        ('={"a": 1, b: a + 1}', {"a": 1, "b": 2}),
        ("=append([1], 2, 3)", [1, 2, 3]),
        ("=distinct values([1, 1, 2])", [1, 2]),
        ("=list contains([1, 2], 2)", True),
        ('=date("2024-03-01") + duration("P1D")', "2024-03-02"),
        ('=@"PT10M" * 2', "PT20M"),
        ('=duration("PT90M").hours', 1),
        ('=date and time("2024-01-01T10:00:00Z") < date and time("2024-01-02T00:00:00Z")', True),
        ("=decimal(10 / 3, 2)", 3.33),
        ("=floor(2.7)", 2),
        ("=orderId instance of number", True),
        ("=5 in [1..10]", True),
        ('=fromAi(route, "the route")', "Legal"),
    ],
)
def test_feel_expressions(text: str, expected: Any) -> None:
    assert feel.evaluate(text, ORDER) == expected


def test_unknown_variable_is_null_in_camunda_8_expressions() -> None:
    assert feel.evaluate("=missing", {}) is None  # Camunda 8's =expr
    assert feel.evaluate_condition("=missing > 3", {}) is False
    with pytest.raises(ExpressionError, match="unknown variable 'missing'"):
        feel.evaluate("missing", {}, element="Task_1")  # a FEEL condition of Camunda 7 files


def test_check_names_syntax_errors_and_unknown_functions() -> None:
    assert feel.check("=a + (b") is not None
    assert "unknown function 'launchRocket'" in str(feel.check("=launchRocket(1)"))
    assert feel.check("=if a then b else c") is None
    with pytest.raises(ExpressionError, match="element 'Gw'"):
        feel.evaluate("=launchRocket(1)", {}, element="Gw")
