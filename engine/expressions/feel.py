"""A safe evaluator for the FEEL conditions that DMN-minded modelers write on BPMN flows.

Trisotech, Kogito and Camunda 8 users write sequence-flow and loop conditions in FEEL (the
expression language of DMN, ``language="https://www.omg.org/spec/DMN/20191111/FEEL/"``), such
as ``Vacation Approval = "Approved"``. BPMN is untrusted input, so this is a small tokenizer,
parser and tree walker; nothing reaches ``eval``/``exec``.

Supported, lowest precedence first: ``or``; ``and``; ``= != < <= > >=``, ``x between a and b``,
``x in ...``; ``+ -``; ``* /``; unary ``-``; paths ``a.b`` and 1-based list indexes ``a[1]``;
``not(...)``; literals (numbers, ``"strings"`` with ``\\"`` ``\\\\`` ``\\n`` ``\\t``
``\\uXXXX`` escapes, ``true``, ``false``, ``null``, lists ``[1, 2]``) and parentheses.
``in`` takes a value (equality), a list (membership), a range ``[1..10]`` (``(`` and ``]``
as open ends) or a parenthesised list of those, ``x in ("a", "b", [1..3])``.

Names may contain spaces, as FEEL allows: a run of words up to an operator or keyword is one
name. Where a variable's name holds a keyword or one of FEEL's extra name characters
(``. / - ' + *``), the longest variable name written at that point wins, so a variable
``list-price`` is read as itself, not as ``list - price``. An unknown name is an
``ExpressionError`` naming it and the element. Values follow FEEL's three-valued logic:
comparing unlike types, a missing context entry or ``not`` of a non-boolean give ``null``,
and a condition that is ``null`` does not hold.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, DivisionByZero, InvalidOperation
from functools import lru_cache
from typing import Any, Final

from engine.core.errors import ExpressionError

__all__ = ["MARKER", "evaluate", "evaluate_condition", "is_feel_language"]

#: Prefix ``engine.deploy.rewrites`` puts on the text of a FEEL condition so the script engine knows
#: its language (SpiffWorkflow keeps only the text). ``#`` cannot start a JUEL text.
MARKER: Final = "#feel:"
MAX_LENGTH: Final = 10_000
MAX_DEPTH: Final = 100

_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "between", "true", "false", "null"})
_WORD = re.compile(r"[^\W\d][\w?]*|\?")
_NAME_PART = re.compile(r"[\w?]")
_PLAIN_NAME = re.compile(r"[^\W\d][\w?]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_OPS: Final = ("<=", ">=", "!=", "..", "=", "<", ">", "(", ")", "[", "]", ",", ".", "+", "-")
_OPS_TAIL: Final = ("*", "/")
_ESCAPES: Final = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "'": "'"}


def is_feel_language(language: str | None) -> bool:
    """FEEL by any of its names: the OMG URLs, ``feel``, ``FEEL-1.3``..."""
    return language is not None and "feel" in language.lower()


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # num, str, name, kw, op, end
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class _Node:
    """kind: const (value), name (value), list (args), neg (args[0]), not (args[0]), bool
    (value 'and'/'or', args), cmp (value op, args), arith (value op, args), path (value key,
    args[0]), index (args target, index), between (args x, low, high), in (args x, *tests),
    range (value (open_low, open_high), args low, high)."""

    kind: str
    value: Any = None
    args: tuple[_Node, ...] = ()


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end"
    if token.kind == "str":
        return f'"{token.value}"'
    return f"'{token.value}'"


def _quote(text: str) -> str:
    return f"'{text}'" if len(text) <= 200 else f"'{text[:200]}...'"


def _error(source: str, element: str | None, message: str) -> ExpressionError:
    where = f" of element '{element}'" if element else ""
    return ExpressionError(f"FEEL condition {_quote(source)}{where}: {message}")


class _Syntax(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(f"syntax error at position {pos}: {message}")


def _string(source: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    i = pos + 1
    while i < len(source):
        char = source[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\" and i + 1 < len(source):
            nxt = source[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", source[i + 2 : i + 6]):
                out.append(chr(int(source[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise _Syntax(i, f"unknown escape '\\{nxt}'")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(char)
        i += 1
    raise _Syntax(pos, "unterminated string literal")


def _tokenize(source: str, names: tuple[str, ...]) -> list[_Token]:
    """``names``: variable names with spaces or extra name characters, longest first."""
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        char = source[pos]
        if char.isspace():
            pos += 1
            continue
        if char == '"':
            text, end = _string(source, pos)
            tokens.append(_Token("str", text, pos))
            pos = end
            continue
        number = _NUMBER.match(source, pos)
        if number and not (char == "." and tokens and _ends_value(tokens[-1])):
            tokens.append(_Token("num", Decimal(number.group()), pos))
            pos = number.end()
            continue
        if _WORD.match(source, pos):
            pos = _name(source, pos, names, tokens)
            continue
        if source.startswith("==", pos):
            raise _Syntax(pos, "'==' is not FEEL; FEEL compares with '='")
        op = next((o for o in (*_OPS, *_OPS_TAIL) if source.startswith(o, pos)), None)
        if op is None:
            raise _Syntax(pos, f"unexpected character {char!r}")
        tokens.append(_Token("op", op, pos))
        pos += len(op)
    tokens.append(_Token("end", None, pos))
    return tokens


def _ends_value(token: _Token) -> bool:
    """Could ``token`` end an operand (so a following ``.`` is a path, not ``.5``)?"""
    if token.kind == "op":
        return token.value in (")", "]")
    return token.kind != "kw" or token.value in ("true", "false", "null")


def _name(source: str, pos: int, names: tuple[str, ...], tokens: list[_Token]) -> int:
    """A name (possibly of several words) or a keyword at ``pos``; returns the end."""
    after_dot = bool(tokens) and tokens[-1].kind == "op" and tokens[-1].value == "."
    if not after_dot:
        for name in names:
            end = pos + len(name)
            if source.startswith(name, pos) and not _NAME_PART.match(source, end):
                tokens.append(_Token("name", name, pos))
                return end
    match = _WORD.match(source, pos)
    assert match is not None
    if match.group() in _KEYWORDS and not after_dot:
        tokens.append(_Token("kw", match.group(), pos))
        return match.end()
    words, end = [match.group()], match.end()
    while True:
        gap = end
        while gap < len(source) and source[gap].isspace():
            gap += 1
        nxt = _WORD.match(source, gap) if gap > end else None
        if nxt is None or nxt.group() in _KEYWORDS:
            break
        words.append(nxt.group())
        end = nxt.end()
    tokens.append(_Token("name", " ".join(words), pos))
    return end


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        #: Inside ``]a..b[``: a ``[`` after the upper end closes the range, not an index.
        self.range_end = False

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, kind: str, value: Any) -> bool:
        token = self.peek()
        return token.kind == kind and token.value == value

    def accept(self, kind: str, value: Any) -> bool:
        if self.at(kind, value):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, value: Any) -> None:
        if not self.accept(kind, value):
            token = self.peek()
            raise _Syntax(token.pos, f"expected '{value}', found {_describe(token)}")

    def parse(self) -> _Node:
        node = self.disjunction()
        token = self.peek()
        if token.kind != "end":
            raise _Syntax(token.pos, f"unexpected {_describe(token)}")
        return node

    def disjunction(self) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Syntax(self.peek().pos, f"nested deeper than {MAX_DEPTH}")
        operands = [self.conjunction()]
        while self.accept("kw", "or"):
            operands.append(self.conjunction())
        self.depth -= 1
        return operands[0] if len(operands) == 1 else _Node("bool", "or", tuple(operands))

    def conjunction(self) -> _Node:
        operands = [self.comparison()]
        while self.accept("kw", "and"):
            operands.append(self.comparison())
        return operands[0] if len(operands) == 1 else _Node("bool", "and", tuple(operands))

    def comparison(self) -> _Node:
        left = self.additive()
        token = self.peek()
        if token.kind == "op" and token.value in ("=", "!=", "<", "<=", ">", ">="):
            self.next()
            return _Node("cmp", token.value, (left, self.additive()))
        if self.accept("kw", "between"):
            low = self.additive()
            self.expect("kw", "and")
            return _Node("between", None, (left, low, self.additive()))
        if self.accept("kw", "in"):
            return _Node("in", None, (left, *self.tests()))
        return left

    def tests(self) -> tuple[_Node, ...]:
        """The right side of ``in``: one test, or a parenthesised list of tests."""
        if not self.at("op", "("):
            return (self.test(),)
        self.next()
        first = self.test()
        if first.kind != "range" and self.at("op", ".."):
            return (self.interval("(", first),)
        items = [first]
        while self.accept("op", ","):
            items.append(self.test())
        self.expect("op", ")")
        return tuple(items)

    def test(self) -> _Node:
        if self.at("op", "]") or self.at("op", "("):
            return self.interval(self.next().value)
        if self.at("op", "["):
            start = self.i
            self.next()
            first = self.additive()
            if self.at("op", ".."):
                return self.interval("[", first)
            self.i = start
        return self.additive()

    def interval(self, opening: str, low: _Node | None = None) -> _Node:
        low = self.additive() if low is None else low
        self.expect("op", "..")
        self.range_end = True
        high = self.additive()
        self.range_end = False
        closing = self.next()
        if closing.kind != "op" or closing.value not in ("]", ")", "["):
            raise _Syntax(closing.pos, "a range ends with ']', ')' or '['")
        return _Node("range", (opening != "[", closing.value != "]"), (low, high))

    def additive(self) -> _Node:
        node = self.multiplicative()
        while self.peek().kind == "op" and self.peek().value in ("+", "-"):
            node = _Node("arith", self.next().value, (node, self.multiplicative()))
        return node

    def multiplicative(self) -> _Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().value in ("*", "/"):
            node = _Node("arith", self.next().value, (node, self.unary()))
        return node

    def unary(self) -> _Node:
        if self.accept("op", "-"):
            return _Node("neg", None, (self.unary(),))
        node = self.primary()
        while True:
            if self.accept("op", "."):
                token = self.next()
                if token.kind != "name":
                    raise _Syntax(token.pos, "expected a name after '.'")
                node = _Node("path", token.value, (node,))
            elif not self.range_end and self.accept("op", "["):
                index = self.disjunction()
                self.expect("op", "]")
                node = _Node("index", None, (node, index))
            else:
                return node

    def primary(self) -> _Node:
        token = self.next()
        if token.kind in ("num", "str"):
            return _Node("const", token.value)
        if token.kind == "name":
            return _Node("name", token.value)
        if token.kind == "kw" and token.value in ("true", "false", "null"):
            return _Node("const", {"true": True, "false": False, "null": None}[token.value])
        if token.kind == "kw" and token.value == "not":
            self.expect("op", "(")
            operand = self.disjunction()
            self.expect("op", ")")
            return _Node("not", None, (operand,))
        if token.kind == "op" and token.value == "(":
            node = self.disjunction()
            self.expect("op", ")")
            return node
        if token.kind == "op" and token.value == "[":
            items: list[_Node] = []
            if not self.accept("op", "]"):
                items.append(self.disjunction())
                while self.accept("op", ","):
                    items.append(self.disjunction())
                self.expect("op", "]")
            return _Node("list", None, tuple(items))
        raise _Syntax(token.pos, f"unexpected {_describe(token)}")


@lru_cache(maxsize=2048)
def _compile(source: str, names: tuple[str, ...]) -> _Node:
    return _Parser(_tokenize(source, names)).parse()


# --- values ------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def _equals(a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        return _decimal(a) == _decimal(b)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        pairs = [_equals(x, y) for x, y in zip(a, b, strict=True)]
        return None if None in pairs else all(pairs)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            return False
        entries = [_equals(a[k], b[k]) for k in a]
        return None if None in entries else all(entries)
    if type(a) is type(b) and isinstance(a, str | bool):
        return bool(a == b)
    return None  # unlike types: null in FEEL


_ORDER: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _order(op: str, a: Any, b: Any) -> bool | None:
    if _is_number(a) and _is_number(b):
        return bool(_ORDER[op](_decimal(a), _decimal(b)))
    if isinstance(a, str) and isinstance(b, str):
        return bool(_ORDER[op](a, b))
    return None  # unlike types (or null): null in FEEL


def _plain(value: Any) -> Any:
    """Decimals back to int/float for callers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _Evaluator:
    def __init__(self, source: str, variables: Mapping[str, Any], element: str | None) -> None:
        self.source = source
        self.variables = variables
        self.element = element

    def eval(self, node: _Node) -> Any:
        kind, args = node.kind, node.args
        if kind == "const":
            return node.value
        if kind == "name":
            if node.value not in self.variables:
                raise _error(self.source, self.element, f"unknown variable '{node.value}'")
            return self.variables[node.value]
        if kind == "list":
            return [self.eval(a) for a in args]
        if kind == "bool":
            return self.logic(node.value, args)
        if kind == "not":
            value = self.eval(args[0])
            return (not value) if isinstance(value, bool) else None
        if kind == "cmp":
            left, right = self.eval(args[0]), self.eval(args[1])
            if node.value in ("=", "!="):
                same = _equals(left, right)
                return same if same is None or node.value == "=" else not same
            return _order(node.value, left, right)
        if kind == "between":
            x, low, high = (self.eval(a) for a in args)
            return self.logic_values("and", [_order(">=", x, low), _order("<=", x, high)])
        if kind == "in":
            value = self.eval(args[0])
            results = [self.test(value, t) for t in args[1:]]
            return True if True in results else (None if None in results else False)
        if kind == "arith":
            return self.arith(node.value, self.eval(args[0]), self.eval(args[1]))
        if kind == "neg":
            value = self.eval(args[0])
            return -_decimal(value) if _is_number(value) else None
        if kind == "path":
            return self.path(self.eval(args[0]), node.value)
        if kind == "index":
            return self.index(self.eval(args[0]), self.eval(args[1]))
        raise _error(self.source, self.element, f"a range cannot stand alone ({kind})")

    def logic(self, op: str, args: tuple[_Node, ...]) -> bool | None:
        decisive = op == "or"
        seen: list[Any] = []
        for arg in args:
            value = self.eval(arg)
            if value is decisive:
                return bool(decisive)
            seen.append(value)
        return self.logic_values(op, seen)

    @staticmethod
    def logic_values(op: str, values: list[Any]) -> bool | None:
        decisive = op == "or"
        if decisive in values:
            return decisive
        return (not decisive) if all(isinstance(v, bool) for v in values) else None

    def test(self, value: Any, test: _Node) -> bool | None:
        if test.kind == "range":
            low, high = self.eval(test.args[0]), self.eval(test.args[1])
            open_low, open_high = test.value
            above = _order(">" if open_low else ">=", value, low)
            below = _order("<" if open_high else "<=", value, high)
            return self.logic_values("and", [above, below])
        candidate = self.eval(test)
        if isinstance(candidate, list) and not isinstance(value, list):
            found = [_equals(value, item) for item in candidate]
            return True if True in found else (None if None in found else False)
        return _equals(value, candidate)

    @staticmethod
    def arith(op: str, a: Any, b: Any) -> Any:
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if not (_is_number(a) and _is_number(b)):
            return None
        x, y = _decimal(a), _decimal(b)
        try:
            if op == "+":
                return x + y
            if op == "-":
                return x - y
            if op == "*":
                return x * y
            return x / y
        except (DivisionByZero, InvalidOperation):
            return None  # FEEL: division by zero is null

    @staticmethod
    def path(target: Any, key: str) -> Any:
        if isinstance(target, Mapping):
            return target.get(key)
        if isinstance(target, list):  # FEEL maps a path over a list of contexts
            return [item.get(key) if isinstance(item, Mapping) else None for item in target]
        return None

    @staticmethod
    def index(target: Any, index: Any) -> Any:
        if not isinstance(target, list) or not _is_number(index):
            return None
        i = int(_decimal(index))
        if i > 0 and i <= len(target):
            return target[i - 1]
        if i < 0 and -i <= len(target):
            return target[i]
        return None


def _names(source: str, variables: Mapping[str, Any]) -> tuple[str, ...]:
    """Variable names that tokenizing word by word would split, written in ``source``."""
    special = {
        n
        for n in variables
        if isinstance(n, str) and n and not _PLAIN_NAME.fullmatch(n) and n in source
    }
    return tuple(sorted(special, key=lambda n: (-len(n), n)))


def evaluate(text: str, variables: Mapping[str, Any], element: str | None = None) -> Any:
    """Evaluate a FEEL expression (``MARKER`` prefix allowed) against ``variables``."""
    source = text[len(MARKER) :] if text.startswith(MARKER) else text
    source = source.strip()
    if not source:
        raise _error(source, element, "empty expression")
    if len(source) > MAX_LENGTH:
        raise _error(source, element, f"{len(source)} characters long (limit {MAX_LENGTH})")
    try:
        tree = _compile(source, _names(source, variables))
    except _Syntax as exc:
        raise _error(source, element, str(exc)) from None
    return _plain(_Evaluator(source, variables, element).eval(tree))


def evaluate_condition(text: str, variables: Mapping[str, Any], element: str | None = None) -> bool:
    """A FEEL condition: true holds; false and null (FEEL's unknown) do not."""
    value = evaluate(text, variables, element)
    if value is None or isinstance(value, bool):
        return value is True
    source = text[len(MARKER) :] if text.startswith(MARKER) else text
    raise _error(source.strip(), element, f"must be a boolean, got {value!r}")
