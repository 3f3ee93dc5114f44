"""The FEEL condition subset (engine.expressions.feel) as a table, plus its errors."""

from __future__ import annotations

import re

import pytest

from engine.core.errors import ExpressionError
from engine.expressions import feel

VARS = {
    "Vacation Approval": "Approved",
    "Vacation Approval Status": {"Approval": "Approved", "days": 3},
    "days": 4,
    "ratio": 0.1,
    "list-price": 50,
    "price": 20,
    "approved": True,
    "nothing": None,
    "items": [{"sku": "a"}, {"sku": "b"}],
    "tags": ["x", "y"],
    "Approved or Rejected": "yes",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Vacation Approval = "Approved"', True),
        ('Vacation Approval != "Approved"', False),
        ('Vacation Approval Status.Approval = "Approved"', True),
        ("Vacation Approval Status.days + 1 = days", True),
        ("Vacation Approval Status.missing = null", True),
        ("days > 3 and days <= 4", True),
        ("days < 3 or approved", True),
        ("not(approved)", False),
        ("not(nothing)", None),
        ("nothing = null", True),
        ("days = null", False),
        ('days = "4"', None),
        ('days < "5"', None),
        ("ratio + 0.2 = 0.3", True),
        (".5 < days", True),
        ("-days < 0", True),
        ("days * 2 / 4 = 2", True),
        ("days / 0", None),
        ('"a" + "b" = "ab"', True),
        ("list-price > price", True),
        ("list-price - price = 30", True),
        ('Approved or Rejected = "yes"', True),
        ("days in [1..4]", True),
        ("days in [1..4)", False),
        ("days in ]4..9]", False),
        ("days in (1..5)", True),
        ("days in (1, 2, 4)", True),
        ("days in [1, 2, 3]", False),
        ('"y" in tags', True),
        ("days in 4", True),
        ("days between 4 and 9", True),
        ("days between 5 and 9", False),
        ('items.sku = ["a", "b"]', True),
        ('items[1].sku = "a"', True),
        ('items[-1].sku = "b"', True),
        ("items[3] = null", True),
        ("null and false", False),
        ("null or true", True),
        ("null and true", None),
        ("true and (false or true)", True),
        ('"line\\nbreak" = "line\\u000abreak"', True),
    ],
)
def test_evaluate(text: str, expected: object) -> None:
    assert feel.evaluate(text, VARS) == expected


def test_condition_treats_null_as_not_holding() -> None:
    assert feel.evaluate_condition("not(nothing)", VARS) is False
    assert feel.evaluate_condition(feel.MARKER + "days = 4", VARS) is True


def test_condition_must_be_boolean() -> None:
    with pytest.raises(ExpressionError, match="must be a boolean, got 4"):
        feel.evaluate_condition("days", VARS, "Gateway_1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Vacation Status = 1", "element 'G': unknown variable 'Vacation Status'"),
        ("days == 4", "'==' is not FEEL; FEEL compares with '='"),
        ('days = "4', "unterminated string literal"),
        ("days in (1..", "unexpected the end"),
        ("days = 4 4", "unexpected '4'"),
        ("days ; 4", "unexpected character ';'"),
        ("", "empty expression"),
        ("(" * 200 + "1" + ")" * 200, "nested deeper than 100"),
    ],
)
def test_errors_name_the_problem_and_element(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        feel.evaluate(text, VARS, "G")


def test_language_detection() -> None:
    assert feel.is_feel_language("https://www.omg.org/spec/DMN/20191111/FEEL/")
    assert feel.is_feel_language("FEEL")
    assert not feel.is_feel_language("juel")
    assert not feel.is_feel_language(None)
