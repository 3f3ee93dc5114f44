from __future__ import annotations

import inspect
import sys
from typing import Any

import pytest

from engine.core.errors import EngineError, ExpressionError
from engine.expressions.juel import (
    Expression,
    compile_expression,
    evaluate,
    evaluate_condition,
    is_expression,
)

VARS: dict[str, Any] = {
    "amount": 1500,
    "price": 9.5,
    "zero": 0,
    "approved": True,
    "rejected": False,
    "name": "Ann",
    "padded": "  Hi there \t",
    "nothing": None,
    "blank": "",
    "numeric": "100",
    "flag_text": "true",
    "items": [10, 20, 30],
    "no_items": [],
    "pair": (1, 2),
    "order": {"total": 120, "customer": {"name": "Bob"}, "tags": ["a", "b"], "none": None},
    "no_order": {},
    "__business_key__": "BK-7",
    "__instance_id__": "inst-1",
}


def run(text: str, variables: dict[str, Any] | None = None) -> Any:
    return evaluate(text, VARS if variables is None else variables)


def same(actual: Any, expected: Any) -> None:
    """Equal *and* of the same type, so 1 never passes for True or 1.0."""
    assert actual == expected
    assert type(actual) is type(expected)


# --- literals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${1}", 1),
        ("${0}", 0),
        ("${1.5}", 1.5),
        ("${1e3}", 1000.0),
        ("${2.5E-1}", 0.25),
        ("${'single'}", "single"),
        ('${"double"}', "double"),
        ("${''}", ""),
        ("${'it\\'s'}", "it's"),
        ('${"say \\"hi\\""}', 'say "hi"'),
        ("${'back\\\\slash'}", "back\\slash"),
        ("${'mixed \"quotes\"'}", 'mixed "quotes"'),
        ("${'}'}", "}"),
        ("${true}", True),
        ("${false}", False),
        ("${null}", None),
        ("${True}", True),
        ("${False}", False),
        ("${None}", None),
        ("${[1, 'a', [true]]}", [1, "a", [True]]),
        ("${[]}", []),
        ("${9223372036854775807}", 9223372036854775807),
        ("  ${1}\n", 1),
    ],
)
def test_literals(text: str, expected: Any) -> None:
    same(run(text), expected)


# --- operators and their keyword aliases -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${7 + 3}", 10),
        ("${7 - 10}", -3),
        ("${7 * 3}", 21),
        ("${7 / 2}", 3.5),
        ("${6 / 3}", 2.0),
        ("${7 div 2}", 3.5),
        ("${7 % 3}", 1),
        ("${7 mod 3}", 1),
        ("${-7 % 3}", -1),
        ("${7 % -3}", 1),
        ("${7.5 % 2}", 1.5),
        ("${1.5 + 1}", 2.5),
        ("${-amount}", -1500),
        ("${- -1}", 1),
        ("${2 == 2}", True),
        ("${2 eq 3}", False),
        ("${2 != 3}", True),
        ("${2 ne 2}", False),
        ("${1 < 2}", True),
        ("${1 lt 1}", False),
        ("${2 > 1}", True),
        ("${1 gt 2}", False),
        ("${1 <= 1}", True),
        ("${2 le 1}", False),
        ("${1 >= 1}", True),
        ("${0 ge 1}", False),
        ("${true && true}", True),
        ("${true and false}", False),
        ("${false || true}", True),
        ("${false or false}", False),
        ("${!true}", False),
        ("${not false}", True),
        ("${!!approved}", True),
        ("${'a' < 'b'}", True),
        ("${'b' >= 'ab'}", True),
    ],
)
def test_operators(text: str, expected: Any) -> None:
    same(run(text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${1 + 2 * 3}", 7),
        ("${(1 + 2) * 3}", 9),
        ("${10 - 4 - 3}", 3),
        ("${10 - (4 - 3)}", 9),
        ("${100 / 10 / 5}", 2.0),
        ("${2 * 3 % 4}", 2),
        ("${-2 * 3}", -6),
        ("${1 + 2 == 3}", True),
        ("${1 < 2 == true}", True),
        ("${true || false && false}", True),
        ("${(true || false) && false}", False),
        ("${false && true || true}", True),
        ("${!false && false}", False),
        ("${!(false && false)}", True),
        ("${1 + 1 > 1 && 2 * 2 == 4}", True),
        ("${empty nothing && true}", True),
        ("${true ? 1 : 2 + 10}", 1),
        ("${false ? 1 : 2 + 10}", 12),
        ("${false || true ? 'y' : 'n'}", "y"),
        ("${zero > 0 ? 'pos' : zero < 0 ? 'neg' : 'zero'}", "zero"),
        ("${true ? false ? 1 : 2 : 3}", 2),
        ("${order.total + items[0] * 2}", 140),
    ],
)
def test_precedence_and_ternary(text: str, expected: Any) -> None:
    same(run(text), expected)


def test_logical_operators_short_circuit() -> None:
    # The right-hand side would fail to resolve; short-circuiting never evaluates it.
    assert run("${false && missing}") is False
    assert run("${true || missing}") is True
    assert run("${approved ? 'ok' : missing}") == "ok"
    assert run("${true and true and false and missing}") is False


# --- property and index access -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${order.total}", 120),
        ("${order.customer.name}", "Bob"),
        ("${order['total']}", 120),
        ("${order[\"customer\"]['name']}", "Bob"),
        ("${order.missing}", None),
        ("${order['missing']}", None),
        ("${order.none}", None),
        ("${no_order.x}", None),
        ("${order.tags[1]}", "b"),
        ("${items[0]}", 10),
        ("${items[2]}", 30),
        ("${items[3]}", None),
        ("${items[-1]}", None),
        ("${items['1']}", 20),
        ("${items[zero]}", 10),
        ("${pair[1]}", 2),
        ("${[5, 6][1]}", 6),
    ],
)
def test_property_and_index(text: str, expected: Any) -> None:
    same(run(text), expected)


# --- methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${name.length()}", 3),
        ("${name.isEmpty()}", False),
        ("${blank.isEmpty()}", True),
        ("${name.contains('nn')}", True),
        ("${name.startsWith('A')}", True),
        ("${name.endsWith('x')}", False),
        ("${name.toUpperCase()}", "ANN"),
        ("${name.toLowerCase()}", "ann"),
        ("${padded.trim()}", "Hi there"),
        ("${name.equals('Ann')}", True),
        ("${name.equals('ann')}", False),
        ("${numeric.equals(100)}", False),
        ("${name.equalsIgnoreCase('aNN')}", True),
        ("${name.substring(1)}", "nn"),
        ("${name.substring(0, 2)}", "An"),
        ("${name.substring(3)}", ""),
        ("${name.indexOf('n')}", 1),
        ("${name.indexOf('z')}", -1),
        ("${'abc'.toUpperCase().length()}", 3),
        ("${items.size()}", 3),
        ("${items.isEmpty()}", False),
        ("${no_items.isEmpty()}", True),
        ("${items.contains(20)}", True),
        ("${items.contains(21)}", False),
        ("${items.get(2)}", 30),
        ("${pair.size()}", 2),
        ("${order.size()}", 4),
        ("${no_order.isEmpty()}", True),
        ("${order.containsKey('total')}", True),
        ("${order.containsKey('none')}", True),
        ("${order.containsKey('nope')}", False),
        ("${order.get('total')}", 120),
        ("${order.get('nope')}", None),
        ("${order.tags.contains('a')}", True),
    ],
)
def test_methods(text: str, expected: Any) -> None:
    same(run(text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${empty nothing}", True),
        ("${empty blank}", True),
        ("${empty no_items}", True),
        ("${empty no_order}", True),
        ("${empty name}", False),
        ("${empty items}", False),
        ("${empty zero}", False),
        ("${empty rejected}", False),
        ("${!empty name}", True),
        ("${not empty order}", True),
        ("${empty order.missing}", True),
    ],
)
def test_empty(text: str, expected: Any) -> None:
    same(run(text), expected)


# --- coercions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${'1' + 2}", 3),
        ("${numeric * 2}", 200),
        ("${'1.5' + 1}", 2.5),
        ("${'2' * '3'}", 6),
        ("${'a' + 'b'}", "ab"),
        ("${name + ' ' + 'Smith'}", "Ann Smith"),
        ("${nothing + 1}", 1),
        ("${-nothing}", 0),
        ("${-'3'}", -3),
        ("${'' + 1}", 1),
        ("${amount > '100'}", True),
        ("${'99' < 100}", True),
        ("${'10' < '9'}", True),
        ("${1 == 1.0}", True),
        ("${1 == '1'}", True),
        ("${'1.0' == 1}", True),
        ("${'abc' == 1}", False),
        ("${0 == ''}", False),
        ("${true == 1}", False),
        ("${true == 'true'}", True),
        ("${false == 'FALSE'}", True),
        ("${true == 'yes'}", False),
        ("${nothing == null}", True),
        ("${null == null}", True),
        ("${null == 0}", False),
        ("${null == ''}", False),
        ("${nothing != null}", False),
        ("${'a' == 'a'}", True),
        ("${items == [10, 20, 30]}", True),
        ("${nothing < 1}", False),
        ("${nothing > 1}", False),
        ("${1 >= nothing}", False),
        ("${null <= null}", True),
        ("${null < null}", False),
        ("${flag_text && true}", True),
        ("${'false' || false}", False),
        ("${nothing || true}", True),
        ("${!nothing}", True),
        ("${nothing ? 1 : 2}", 2),
        ("${'true' ? 1 : 2}", 1),
    ],
)
def test_coercions(text: str, expected: Any) -> None:
    same(run(text), expected)


# --- composite texts, #{}, escapes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello ${name}, you owe ${amount}", "Hello Ann, you owe 1500"),
        ("${name}${amount}", "Ann1500"),
        ("total: ${price}", "total: 9.5"),
        ("is ${approved} / ${rejected}", "is true / false"),
        ("[${nothing}]", "[]"),
        ("${amount} ", 1500),
        ("x${'}'}y", "x}y"),
        ("#{amount}", 1500),
        ("#{order.total >= 100 && !empty name}", True),
        ("${name} and #{amount}", "Ann and 1500"),
        ("cost \\${amount}", "cost ${amount}"),
        ("\\#{x} ${1}", "#{x} 1"),
        ("plain text", "plain text"),
        ("price in $ and # {not}", "price in $ and # {not}"),
        ("", ""),
    ],
)
def test_composite_and_literal_text(text: str, expected: Any) -> None:
    same(run(text), expected)


# --- conditions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${amount > 1000}", True),
        ("${approved}", True),
        ("#{rejected}", False),
        ("  ${approved}  ", True),
        ("${flag_text}", True),
        ("${'FALSE'}", False),
        ("amount > 100 and approved == True", True),
        ("amount > 100 and rejected == True", False),
        ("not approved or amount >= 1500", True),
        ("nothing == None", True),
        ("name != 'Bob' and items.size() == 3", True),
        ("approved", True),
        ("order.total > 100 && !empty order.tags", True),
    ],
)
def test_evaluate_condition(text: str, expected: bool) -> None:
    same(evaluate_condition(text, VARS), expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${amount}", "got integer 1500"),
        ("${name}", "got string 'Ann'"),
        ("${nothing}", "got null"),
        ("${items}", "got list"),
        ("amount + 1", "got integer 1501"),
        ("is ${approved}", "got string 'is true'"),
    ],
)
def test_condition_must_be_boolean(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate_condition(text, VARS)
    assert fragment in str(info.value)
    assert f"'{text}'" in str(info.value)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_condition_is_an_error(text: str) -> None:
    with pytest.raises(ExpressionError, match="empty condition"):
        evaluate_condition(text, VARS)


# --- execution ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${execution.getVariable('amount')}", 1500),
        ('${execution.getVariable("name")}', "Ann"),
        ("${execution.getVariable('missing')}", None),
        ("${execution.getVariable('amount') > 1000}", True),
        ("${execution.hasVariable('amount')}", True),
        ("${execution.hasVariable('missing')}", False),
        ("${execution.getBusinessKey()}", "BK-7"),
        ("${execution.getProcessBusinessKey()}", "BK-7"),
        ("${execution.processBusinessKey}", "BK-7"),
        ("${execution.businessKey}", "BK-7"),
        ("${execution.processInstanceId}", "inst-1"),
        ("${execution.getProcessInstanceId()}", "inst-1"),
    ],
)
def test_execution_builtin(text: str, expected: Any) -> None:
    same(run(text), expected)


def test_execution_reserved_keys_absent_give_none() -> None:
    assert evaluate("${execution.processBusinessKey}", {}) is None
    assert evaluate("${execution.getBusinessKey()}", {}) is None
    assert evaluate("${execution.processInstanceId}", {}) is None


def test_user_variable_named_execution_wins() -> None:
    variables = {"execution": {"processBusinessKey": "mine"}, "__business_key__": "BK"}
    assert evaluate("${execution.processBusinessKey}", variables) == "mine"
    with pytest.raises(ExpressionError, match="method 'getVariable' is not allowed on map"):
        evaluate("${execution.getVariable('x')}", variables)


# --- API details -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${a}", True),
        ("#{a}", True),
        ("x ${a} y", True),
        ("a > 1", False),
        ("$ {a}", False),
        ("", False),
        (None, False),
    ],
)
def test_is_expression(text: str | None, expected: bool) -> None:
    assert is_expression(text) is expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("${amount > 10}", {"amount"}),
        ("${a.b.c + d[e] + f.size()}", {"a", "d", "e", "f"}),
        ("Hi ${first} ${last}", {"first", "last"}),
        ("${true ? x : y}", {"x", "y"}),
        ("${execution.getVariable('x') + execution.getBusinessKey()}", {"x"}),
        ("${[p, q]}", {"p", "q"}),
        ("${1 + 2}", set()),
        ("no expression", set()),
    ],
)
def test_identifiers(text: str, names: set[str]) -> None:
    assert compile_expression(text).identifiers == frozenset(names)


def test_compiled_expression_is_cached_and_reusable() -> None:
    first = compile_expression("${amount * 2}")
    assert first is compile_expression("${amount * 2}")
    assert isinstance(first, Expression)
    assert first.source == "${amount * 2}"
    assert first.evaluate({"amount": 2}) == 4
    assert first.evaluate({"amount": 5}) == 10


def test_results_are_fresh_plain_values() -> None:
    expression = compile_expression("${[1, [2]]}")
    result = expression.evaluate({})
    result.append(3)
    result[1].append(4)
    assert expression.evaluate({}) == [1, [2]]


def test_expression_error_is_an_engine_error() -> None:
    with pytest.raises(EngineError):
        evaluate("${missing}", {})


# --- errors ------------------------------------------------------------------------------------


def test_missing_identifier_message() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("${amount > 10}", {})
    assert str(info.value) == "cannot resolve identifier 'amount' in expression '${amount > 10}'"


def test_syntax_error_message_names_position() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("${a >}", {"a": 1})
    assert str(info.value) == (
        "syntax error at position 5 in expression '${a >}': expected an operand, found '}'"
    )


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        # syntax
        ("${a >}", ["position 5", "expected an operand"]),
        ("${}", ["position 2", "expected an operand"]),
        ("${a", ["position 0", "missing '}'"]),
        ("x ${a + (b}", ["position 10", "expected ')'"]),
        ("${1 2}", ["position 4", "unexpected '2'"]),
        ("${'abc}", ["position 2", "unterminated string"]),
        ("${a = 1}", ["position 4", "'=' (use '==' to compare)"]),
        ("${a & b}", ["position 4", "unexpected character '&'"]),
        ("${'\\n'}", ["position 3", "invalid escape"]),
        ("${a.}", ["position 4", "property name"]),
        ("${a.1}", ["position 4", "property name"]),
        ("${[1, 2}", ["position 7", "expected ']'"]),
        ("${a ? b}", ["position 7", "expected ':'"]),
        ("${foo(1)}", ["position 2", "function calls are not supported"]),
        ("${fn:upper(a)}", ["position 4", "unexpected ':'"]),
        ("${a instanceof b}", ["position 4", "'instanceof' is not supported"]),
        ("${99999999999999999999}", ["position 2", "out of range"]),
        ("${a ${b}}", ["position 4", "unexpected character '$'"]),
        # resolution
        ("${missing}", ["cannot resolve identifier 'missing'"]),
        ("${1 + missing}", ["cannot resolve identifier 'missing'"]),
        ("${execution}", ["cannot resolve identifier 'execution'"]),
        ("${nothing.b}", ["cannot read property 'b' of null"]),
        ("${nothing[0]}", ["cannot read index integer 0 of null"]),
        ("${amount.b}", ["cannot read property 'b' of integer"]),
        ("${items.first}", ["cannot read property 'first' of list"]),
        ("${name[0]}", ["cannot read index integer 0 of string"]),
        ("${items['x']}", ["cannot convert string 'x' to a number"]),
        ("${items[1.5]}", ["an index must be an integer"]),
        ("${order[[1]]}", ["cannot be a map key"]),
        # methods
        ("${name.foo()}", ["method 'foo' is not allowed on string"]),
        ("${name.getClass()}", ["method 'getClass' is not allowed on string"]),
        ("${name.format(1)}", ["method 'format' is not allowed on string"]),
        ("${items.pop()}", ["method 'pop' is not allowed on list"]),
        ("${order.keys()}", ["method 'keys' is not allowed on map"]),
        ("${order.items()}", ["method 'items' is not allowed on map"]),
        ("${amount.toString()}", ["method 'toString' is not allowed on integer"]),
        ("${nothing.size()}", ["method 'size' is not allowed on null"]),
        ("${name.length(1)}", ["method 'length' takes 0 arguments, got 1"]),
        ("${name.substring()}", ["method 'substring' takes 1 to 2 arguments, got 0"]),
        ("${name.substring(2, 1)}", ["substring(2, 1) is out of range"]),
        ("${name.substring(0, 9)}", ["out of range"]),
        ("${items.get(3)}", ["get(3) is out of range"]),
        ("${execution.getVariable(1)}", ["execution.getVariable takes one variable name"]),
        ("${execution.setVariable('a', 1)}", ["method 'setVariable' of execution"]),
        ("${execution.engine}", ["property 'engine' of execution is not supported"]),
        # arithmetic and comparison
        ("${1 / 0}", ["division by zero"]),
        ("${1 div zero}", ["division by zero"]),
        ("${1 % 0}", ["division by zero"]),
        ("${1.5 mod 0.0}", ["division by zero"]),
        ("${'abc' + 1}", ["cannot convert string 'abc' to a number"]),
        ("${name * 2}", ["cannot convert string 'Ann' to a number"]),
        ("${true + 1}", ["must be a number, got boolean true"]),
        ("${items + 1}", ["must be a number, got list"]),
        ("${-name}", ["cannot convert string 'Ann' to a number"]),
        ("${-true}", ["must be a number, got boolean true"]),
        ("${9223372036854775807 + 1}", ["integer overflow"]),
        ("${-9223372036854775807 - 2}", ["integer overflow"]),
        ("${4294967296 * 4294967296}", ["integer overflow"]),
        ("${'99999999999999999999' + 1}", ["integer overflow"]),
        ("${name < 1}", ["cannot convert string 'Ann' to a number"]),
        ("${true > false}", ["cannot order boolean true and boolean false"]),
        ("${items < items}", ["cannot compare list"]),
        # logic
        ("${1 && true}", ["operand of '&&' must be a boolean, got integer 1"]),
        ("${false || 'yes'}", ["operand of '||' must be a boolean, got string 'yes'"]),
        ("${!name}", ["operand of '!' must be a boolean"]),
        ("${amount ? 1 : 2}", ["condition of '?:' must be a boolean"]),
    ],
)
def test_errors(text: str, fragments: list[str]) -> None:
    with pytest.raises(ExpressionError) as info:
        run(text)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert f"expression '{text}'" in message


@pytest.mark.parametrize(
    "text",
    [
        "${''.__class__}",
        "${x.__dict__}",
        "${x.__class__.__mro__}",
        "${__builtins__}",
        "${__import__('os')}",
        "${name.__len__()}",
        "${x.__getitem__('a')}",
        "__class__ == 1",
    ],
)
def test_dunder_names_are_refused(text: str) -> None:
    with pytest.raises(ExpressionError, match="is not allowed"):
        evaluate_condition(text, {"x": {"__dict__": 1, "a": 2}, "name": "n"})


def test_dict_keys_that_look_like_internals_are_just_keys() -> None:
    assert evaluate("${x['__class__']}", {"x": {}}) is None


# --- limits ------------------------------------------------------------------------------------


def test_too_long_is_refused() -> None:
    text = "${" + "1 + " * 2500 + "1}"
    assert len(text) > 10_000
    with pytest.raises(ExpressionError, match="characters long"):
        evaluate(text, {})
    with pytest.raises(ExpressionError, match="characters long"):
        evaluate_condition("a" * 10_001, {})


def test_long_plain_text_is_not_an_expression() -> None:
    text = "x" * 20_000
    assert evaluate(text, {}) == text


def test_long_flat_chains_are_fine() -> None:
    assert evaluate("${" + " + ".join(["a"] * 2400) + "}", {"a": 1}) == 2400
    assert evaluate("${" + " && ".join(["a"] * 1600) + "}", {"a": True}) is True
    assert evaluate("${" + " || ".join(["a"] * 1600) + "}", {"a": False}) is False


def nested(kind: str, depth: int) -> str:
    forms = {
        "parens": "(" * depth + "1" + ")" * depth,
        "unary": "-" * depth + "1",
        "not": "!" * depth + "true",
        "negated parens": "-(" * depth + "1" + ")" * depth,
        "sums": "1+(" * depth + "1" + ")" * depth,
        "lists": "[" * depth + "1" + "]" * depth,
        "members": "a" + ".a" * depth,
        "indexes": "x" + "[0]" * depth,
        "ternaries": "true ? " * depth + "1" + " : 2" * depth,
    }
    return "${" + forms[kind] + "}"


NESTED_KINDS = [
    "parens",
    "unary",
    "not",
    "negated parens",
    "sums",
    "lists",
    "members",
    "indexes",
    "ternaries",
]


def deep_values(depth: int) -> dict[str, Any]:
    """``a`` is a map nested ``depth`` times under key 'a', ``x`` a list nested ``depth`` times."""
    a: dict[str, Any] = {}
    x: list[Any] = [0]
    for _ in range(depth):
        a, x = {"a": a}, [x]
    return {"a": a, "x": x}


@pytest.mark.parametrize("kind", NESTED_KINDS)
def test_nesting_up_to_100_works_with_a_small_stack(kind: str) -> None:
    text = nested(kind, 100)
    variables = deep_values(101)
    limit = sys.getrecursionlimit()
    # Parser and evaluator use at most three frames per nesting level: ~300 at the limit.
    sys.setrecursionlimit(len(inspect.stack(context=0)) + 350)
    try:
        evaluate(text, variables)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("kind", NESTED_KINDS)
@pytest.mark.parametrize("depth", [101, 5000])
def test_nesting_deeper_than_100_is_refused(kind: str, depth: int) -> None:
    text = nested(kind, depth)
    with pytest.raises(ExpressionError, match="nested deeper than 100|characters long"):
        evaluate(text, deep_values(3))


def test_deep_bare_condition_is_refused() -> None:
    with pytest.raises(ExpressionError, match="nested deeper than 100"):
        evaluate_condition("(" * 101 + "true" + ")" * 101, {})


def test_huge_string_results_are_refused() -> None:
    big = "x" * 6_000_000
    with pytest.raises(ExpressionError, match="longer than"):
        evaluate("${s + s}", {"s": big})
    with pytest.raises(ExpressionError, match="longer than"):
        evaluate("${s}${s}", {"s": big})


def test_numeric_coercion_of_long_strings_is_linear() -> None:
    text = "1" * 200_000 + "x"
    with pytest.raises(ExpressionError, match="cannot convert"):
        evaluate("${s > 1}", {"s": text})
    with pytest.raises(ExpressionError, match="integer overflow"):
        evaluate("${s + 1}", {"s": "1" * 200_000})
    assert evaluate("${s == 1}", {"s": text}) is False


def test_huge_integer_variables_do_not_crash() -> None:
    huge = 10**400
    with pytest.raises(ExpressionError, match="integer overflow"):
        evaluate("${n + 1}", {"n": huge})
    with pytest.raises(ExpressionError, match="overflow"):
        evaluate("${n / 3}", {"n": 10**400 * 10**400})
    assert evaluate("${n > 1}", {"n": huge}) is True
    with pytest.raises(ExpressionError, match="too large to show"):
        evaluate("${n && true}", {"n": 10**5000})
