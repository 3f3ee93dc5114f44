"""Safe evaluation of the JUEL subset that BPMN modelers write into process files.

Camunda Modeler and bpmn.io put JUEL (Java Unified Expression Language) into sequence-flow
conditions (``${amount > 1000}``), delegate expressions, input/output mappings, timer
definitions and topics. BPMN files are untrusted input, so nothing here hands user text to
``eval``/``exec``/``compile`` or calls ``getattr`` with a user-chosen name: a small tokenizer
and parser build an AST, and the evaluator only reads variables, ``dict`` keys, list items and
a fixed whitelist of methods. Expressions are bounded (10,000 characters, nesting 100) so a
hostile file cannot exhaust the stack, and integers are 64-bit like Java's ``long``.

Supported, lowest precedence first: ``a ? b : c``; ``||`` ``or``; ``&&`` ``and``; ``==`` ``eq``
``!=`` ``ne``; ``<`` ``lt`` ``>`` ``gt`` ``<=`` ``le`` ``>=`` ``ge``; ``+`` ``-``; ``*`` ``/``
``div`` ``%`` ``mod``; unary ``-`` ``!`` ``not`` ``empty``; ``a.b``, ``a[i]``, ``a.m(args)``;
literals (numbers, quoted strings with ``\\'`` ``\\"`` ``\\\\`` escapes, ``true``/``false``/
``null``, lists ``[1, 2]``), identifiers and parentheses. ``True``/``False``/``None`` are
accepted too, so SpiffWorkflow-style bare conditions (``amount > 100 and approved == True``)
work with :func:`evaluate_condition`; they keep JUEL precedence (``not a == b`` is
``(not a) == b``). ``\\${`` in a text is a literal ``${``.

Methods: on strings ``length isEmpty contains startsWith endsWith toUpperCase toLowerCase trim
equals equalsIgnoreCase substring indexOf``; on lists ``size isEmpty contains get``; on dicts
``size isEmpty containsKey get``. Names starting with ``__`` are refused outright.

``execution`` is built in unless a variable of that name exists:
``execution.getVariable('x')`` reads variable x (``None`` when missing, as in Camunda) and
``execution.hasVariable('x')`` tests for it; ``execution.getBusinessKey()``,
``getProcessBusinessKey()``, ``.businessKey`` and ``.processBusinessKey`` read the reserved
variable ``__business_key__``; ``execution.getProcessInstanceId()`` and
``.processInstanceId`` read ``__instance_id__`` (``None`` when absent).

Deviations from JUEL 2.2, chosen for clarity: ``+`` on two strings concatenates (JUEL would
try to add them as numbers); integer overflow is an error rather than Java's silent
wrap-around; ``/`` or ``%`` by zero is an error rather than Infinity/NaN; ordering booleans
(``true > false``) is an error; ``==`` between a number or boolean and an unrelated value
(including ``0 == ''``) is false instead of a coercion; string results longer than
10,000,000 characters are refused.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final, TypeAlias

from engine.core.errors import ExpressionError
from engine.expressions.juel_parser import (
    EXECUTION_NAME,
    INT_MAX,
    INT_MIN,
    Node,
    Parser,
    analyse,
    quote,
    tokenize,
)

__all__ = ["Expression", "compile_expression", "evaluate", "evaluate_condition", "is_expression"]

MAX_LENGTH: Final = 10_000
MAX_STRING: Final = 10_000_000


# --- values and coercions ----------------------------------------------------------------------

_INT_TEXT = re.compile(r"[+-]?[0-9]+")
# Unambiguous on purpose: string variables come from process data, so no backtracking blow-up.
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TYPE_NAMES: Final = {bool: "boolean", int: "integer", float: "float", str: "string"}
_JAVA_WHITESPACE: Final = "".join(map(chr, range(33)))  # what Java's String.trim() removes
_ORDER: Final = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}


class _Fail(Exception):
    """A value-level failure; the evaluator adds the expression text."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "list"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {_to_str(value)}"
    try:
        text = repr(value)
    except ValueError:  # ints beyond Python's int-to-str digit limit
        text = "(too large to show)"
    return f"{_type_name(value)} {text if len(text) <= 60 else text[:60] + '...'}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_number(value: Any, what: str) -> int | float:
    """JUEL's coercion to a number: null and '' are 0, numeric strings parse, bools fail."""
    if value is None or (isinstance(value, str) and value == ""):
        return 0
    if _is_number(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        if len(value) > 20:
            raise _Fail(f"integer overflow converting string {value[:30]!r} for {what}")
        return _check_int(int(value))
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value):
        return float(value)
    if isinstance(value, str):
        raise _Fail(f"cannot convert {_show(value)} to a number for {what}")
    raise _Fail(f"{what} must be a number, got {_show(value)}")


def _check_int(value: int | float) -> int | float:
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise _Fail("integer overflow (results must fit in 64 bits)")
    return value


def _bool_text(value: Any) -> bool | None:
    """A bool, or JUEL's 'true'/'false' strings as one; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _to_bool(value: Any, what: str) -> bool:
    """JUEL's coercion to boolean, kept strict: only booleans, null and 'true'/'false'."""
    flag = False if value is None else _bool_text(value)
    if flag is None:
        raise _Fail(f"{what} must be a boolean, got {_show(value)}")
    return flag


def _to_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except ValueError as exc:  # e.g. ints beyond Python's int-to-str digit limit
        raise _Fail(f"cannot convert {_type_name(value)} to a string: {exc}") from None


def _is_empty(value: Any) -> bool:
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) == 0
    return value is None


def _equals(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        x = _bool_text(a)
        return x is not None and x == _bool_text(b)
    if _is_number(a) or _is_number(b):
        if any(isinstance(value, str) and value == "" for value in (a, b)):
            return False  # unlike JUEL, '' is not 0 here: ${x == ''} never means zero
        try:
            return _to_number(a, "==") == _to_number(b, "==")
        except _Fail:
            return False
    return bool(a == b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None and op in ("<=", ">=")  # JUEL: A==B first, then null
    if isinstance(a, bool) or isinstance(b, bool):
        raise _Fail(f"cannot order {_show(a)} and {_show(b)} with '{op}'")
    if _is_number(a) or _is_number(b):
        a, b = _to_number(a, f"'{op}'"), _to_number(b, f"'{op}'")
    elif not (isinstance(a, str) and isinstance(b, str)):
        raise _Fail(f"cannot compare {_show(a)} and {_show(b)} with '{op}'")
    return bool(_ORDER[op](a, b))


def _arithmetic(op: str, a: Any, b: Any) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_STRING:
            raise _Fail(f"string result longer than {MAX_STRING} characters")
        return a + b
    x, y = _to_number(a, f"left operand of '{op}'"), _to_number(b, f"right operand of '{op}'")
    try:
        if op in ("+", "-", "*"):
            return _check_int(x + y if op == "+" else x - y if op == "-" else x * y)
        if y == 0:
            raise _Fail("division by zero")
        if op == "/":
            return x / y
        if isinstance(x, int) and isinstance(y, int):
            rest = abs(x) % abs(y)  # Java's remainder takes the dividend's sign
            return rest if x >= 0 else -rest
        return math.fmod(x, y) if math.isfinite(x) else math.nan
    except OverflowError as exc:
        raise _Fail(f"numeric overflow in '{op}': {exc}") from None


def _arg_int(value: Any) -> int:
    number = _to_number(value, "an index")
    if not isinstance(number, int):
        raise _Fail(f"an index must be an integer, got {_show(value)}")
    return number


def _substring(s: str, begin: Any, end: Any = None) -> str:
    first, last = _arg_int(begin), len(s) if end is None else _arg_int(end)
    if not 0 <= first <= last <= len(s):
        raise _Fail(f"substring({first}, {last}) is out of range for a string of length {len(s)}")
    return s[first:last]


def _list_get(items: list[Any] | tuple[Any, ...], index: Any) -> Any:
    i = _arg_int(index)
    if not 0 <= i < len(items):
        raise _Fail(f"get({i}) is out of range for a list of size {len(items)}")
    return items[i]


def _map_get(mapping: Mapping[Any, Any], key: Any) -> Any:
    try:
        return mapping.get(key)
    except TypeError:  # unhashable key
        raise _Fail(f"{_show(key)} cannot be a map key") from None


def _map_has(mapping: Mapping[Any, Any], key: Any) -> bool:
    try:
        return key in mapping
    except TypeError:
        raise _Fail(f"{_show(key)} cannot be a map key") from None


_Method: TypeAlias = tuple[int, int, Callable[..., Any]]  # min args, max args, implementation
_STR_METHODS: Final[dict[str, _Method]] = {
    "length": (0, 0, len),
    "isEmpty": (0, 0, lambda s: s == ""),
    "contains": (1, 1, lambda s, x: _to_str(x) in s),
    "startsWith": (1, 1, lambda s, x: s.startswith(_to_str(x))),
    "endsWith": (1, 1, lambda s, x: s.endswith(_to_str(x))),
    "toUpperCase": (0, 0, lambda s: s.upper()),
    "toLowerCase": (0, 0, lambda s: s.lower()),
    "trim": (0, 0, lambda s: s.strip(_JAVA_WHITESPACE)),
    "equals": (1, 1, lambda s, x: isinstance(x, str) and s == x),
    "equalsIgnoreCase": (1, 1, lambda s, x: s.lower() == _to_str(x).lower()),
    "substring": (1, 2, _substring),
    "indexOf": (1, 1, lambda s, x: s.find(_to_str(x))),
}
_LIST_METHODS: Final[dict[str, _Method]] = {
    "size": (0, 0, len),
    "isEmpty": (0, 0, lambda items: len(items) == 0),
    "contains": (1, 1, lambda items, x: any(_equals(item, x) for item in items)),
    "get": (1, 1, _list_get),
}
_MAP_METHODS: Final[dict[str, _Method]] = {
    "size": (0, 0, len),
    "isEmpty": (0, 0, lambda mapping: len(mapping) == 0),
    "containsKey": (1, 1, _map_has),
    "get": (1, 1, _map_get),
}
# execution's bean properties and the reserved variables behind them.
_EXECUTION: Final = dict.fromkeys(("businessKey", "processBusinessKey"), "__business_key__")
_EXECUTION["processInstanceId"] = "__instance_id__"


# --- evaluation --------------------------------------------------------------------------------


class _Evaluator:
    def __init__(self, source: str, variables: Mapping[str, Any]) -> None:
        self.source = source
        self.variables = variables

    def error(self, message: str) -> ExpressionError:
        return ExpressionError(f"{message} in expression {quote(self.source)}")

    def eval(self, node: Node, as_text: bool = False) -> Any:
        try:
            return _to_str(self.node(node)) if as_text else self.node(node)
        except _Fail as exc:
            raise self.error(str(exc)) from None

    def node(self, node: Node) -> Any:
        kind, args = node.kind, node.args
        if kind == "const":
            return node.value
        if kind == "name":
            if node.value in self.variables:
                return self.variables[node.value]
            raise _Fail(f"cannot resolve identifier '{node.value}'")
        if kind == "chain":
            return self.chain(node)
        if kind == "unary":
            value = self.node(args[0])
            if node.value == "!":
                return not _to_bool(value, "operand of '!'")
            if node.value == "empty":
                return _is_empty(value)
            return _check_int(-_to_number(value, "operand of unary '-'"))
        if kind == "ternary":
            test = _to_bool(self.node(args[0]), "condition of '?:'")
            return self.node(args[1] if test else args[2])
        if kind == "list":
            return [self.node(item) for item in args]
        if kind != "index" and args[0] == EXECUTION_NAME and "execution" not in self.variables:
            return self.execution(node)
        target = self.node(args[0])
        if kind == "member":
            if not isinstance(target, Mapping):
                raise _Fail(f"cannot read property '{node.value}' of {_type_name(target)}")
            return target.get(node.value)  # JUEL map semantics: a missing key is null
        if kind == "index":
            key = self.node(args[1])
            if isinstance(target, Mapping):
                return _map_get(target, key)
            if not isinstance(target, list | tuple):
                raise _Fail(f"cannot read index {_show(key)} of {_type_name(target)}")
            i = _arg_int(key)
            return target[i] if 0 <= i < len(target) else None  # JUEL: out of range is null
        return self.call(node.value, target, [self.node(arg) for arg in args[1:]])

    def chain(self, node: Node) -> Any:
        ops, operands = node.value, node.args
        if ops[0] in ("&&", "||"):
            decisive = ops[0] == "||"  # the operand value that short-circuits
            for operand in operands:
                if _to_bool(self.node(operand), f"operand of '{ops[0]}'") is decisive:
                    return decisive
            return not decisive
        value = self.node(operands[0])
        for op, operand in zip(ops, operands[1:], strict=True):
            right = self.node(operand)
            if op in ("==", "!="):
                value = _equals(value, right) if op == "==" else not _equals(value, right)
            elif op in _ORDER:
                value = _compare(op, value, right)
            else:
                value = _arithmetic(op, value, right)
        return value

    @staticmethod
    def call(name: str, target: Any, args: list[Any]) -> Any:
        if isinstance(target, str):
            methods = _STR_METHODS
        elif isinstance(target, list | tuple):
            methods = _LIST_METHODS
        elif isinstance(target, Mapping):
            methods = _MAP_METHODS
        else:
            methods = {}
        if name not in methods:
            raise _Fail(f"method '{name}' is not allowed on {_type_name(target)}")
        low, high, implementation = methods[name]
        if not low <= len(args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise _Fail(f"method '{name}' takes {expected} arguments, got {len(args)}")
        return implementation(target, *args)

    def execution(self, node: Node) -> Any:
        name = node.value
        if node.kind == "member":
            if name not in _EXECUTION:
                raise _Fail(f"property '{name}' of execution is not supported")
            return self.variables.get(_EXECUTION[name])
        args = [self.node(arg) for arg in node.args[1:]]
        if name in ("getVariable", "hasVariable"):
            if len(args) != 1 or not isinstance(args[0], str):
                raise _Fail(f"execution.{name} takes one variable name (a string)")
            return (
                args[0] in self.variables if name == "hasVariable" else self.variables.get(args[0])
            )
        bean = name[3:4].lower() + name[4:]  # getBusinessKey() is .businessKey
        if name.startswith("get") and bean in _EXECUTION and not args:
            return self.variables.get(_EXECUTION[bean])
        raise _Fail(f"method '{name}' of execution is not allowed")


# --- public API --------------------------------------------------------------------------------


class Expression:
    """A compiled text: literal parts and parsed ``${...}`` parts. Immutable and shareable."""

    __slots__ = ("_identifiers", "_parts", "_single", "source")

    def __init__(self, source: str, parts: tuple[str | Node, ...]) -> None:
        self.source = source
        self._parts = parts
        nodes = [part for part in parts if isinstance(part, Node)]
        only_space = all(part.strip() == "" for part in parts if isinstance(part, str))
        self._single = nodes[0] if len(nodes) == 1 and only_space else None
        names: frozenset[str] = frozenset()
        self._identifiers = names.union(*(analyse(source, node) for node in nodes))

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    @property
    def identifiers(self) -> frozenset[str]:
        """Variable names the expression reads (``execution.getVariable('x')`` reads x)."""
        return self._identifiers

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        evaluator = _Evaluator(self.source, variables)
        if self._single is not None:
            return evaluator.eval(self._single)
        pieces = [p if isinstance(p, str) else evaluator.eval(p, as_text=True) for p in self._parts]
        if sum(map(len, pieces)) > MAX_STRING:
            raise evaluator.error(f"string result longer than {MAX_STRING} characters")
        return "".join(pieces)


_MARKER = re.compile(r"\\?[$#]\{")


def is_expression(text: str | None) -> bool:
    """True if ``text`` contains ``${`` or ``#{``."""
    return text is not None and ("${" in text or "#{" in text)


def _check_length(text: str) -> None:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression {quote(text)} is {len(text)} characters long (limit {MAX_LENGTH})"
        )


@lru_cache(maxsize=4096)
def _compile_template(text: str) -> Expression:
    _check_length(text)
    parts: list[str | Node] = []
    literal = ""
    pos = 0
    while (match := _MARKER.search(text, pos)) is not None:
        literal += text[pos : match.start()]
        if match.group().startswith("\\"):
            literal += match.group()[1:]  # escaped: a literal '${'
            pos = match.end()
            continue
        if literal:
            parts.append(literal)
        literal = ""
        tokens, pos = tokenize(text, match.end(), template=True)
        parts.append(Parser(text, tokens).parse())
    if literal + text[pos:]:
        parts.append(literal + text[pos:])
    return Expression(text, tuple(parts))


@lru_cache(maxsize=4096)
def _compile_bare(text: str) -> Expression:
    _check_length(text)
    tokens, _ = tokenize(text, 0, template=False)
    return Expression(text, (Parser(text, tokens).parse(),))


def compile_expression(text: str) -> Expression:
    """Parse ``text`` once. Text without ``${``/``#{`` is a literal string."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, not {type(text).__name__}")
    if not is_expression(text):
        return Expression(text, (text,))
    return _compile_template(text)


def evaluate(text: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate ``text``: a typed value for a single ``${...}``, a string otherwise."""
    return compile_expression(text).evaluate(variables)


def evaluate_condition(text: str, variables: Mapping[str, Any]) -> bool:
    """Evaluate a condition to a bool. Bare text (no ``${``) is read as an expression."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"empty condition expression {quote(str(text))}")
    expression = compile_expression(text) if is_expression(text) else _compile_bare(text)
    value = expression.evaluate(variables)
    if (flag := _bool_text(value)) is not None:
        return flag
    raise ExpressionError(f"condition {quote(text)} must evaluate to a boolean, got {_show(value)}")
