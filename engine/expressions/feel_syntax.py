"""FEEL's syntax: tokens and the parser (``engine.expressions.feel`` evaluates the tree).

Lowest precedence first: ``if c then a else b``, ``for x in xs return e``, ``some``/``every x in
xs satisfies c``; ``or``; ``and``; ``= != < <= > >=``, ``x between a and b``, ``x in ...``; ``+ -``;
``* /``; ``**``; unary ``-``; paths ``a.b``, filters and 1-based indexes ``a[...]``; function calls
``f(a, b)`` (names may hold spaces: ``substring before(s, "x")``); context literals
``{a: 1, "b c": 2}``, lists ``[1, 2]``, temporal literals ``@"PT5M"``, strings, numbers,
``true``, ``false``, ``null`` and parentheses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

MAX_DEPTH: Final = 100

_KEYWORDS: Final = frozenset(
    {
        "and",
        "or",
        "not",
        "in",
        "between",
        "true",
        "false",
        "null",
        "if",
        "then",
        "else",
        "for",
        "return",
        "some",
        "every",
        "satisfies",
        "instance",
        "of",
    }
)
#: Built-in function names that hold a keyword (read as one name before a ``(``).
_KEYWORD_FUNCTIONS: Final = ("years and months duration", "date and time")
_WORD = re.compile(r"[^\W\d][\w?]*|\?")
_NAME_PART = re.compile(r"[\w?]")
PLAIN_NAME = re.compile(r"[^\W\d][\w?]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_OPS: Final = (
    "<=",
    ">=",
    "!=",
    "..",
    "**",
    "=",
    "<",
    ">",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    ".",
    "+",
    "-",
    "@",
)
_OPS_TAIL: Final = ("*", "/")
_ESCAPES: Final = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "'": "'"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num, str, name, kw, op, end
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Node:
    """kind: const (value), name (value), list (args), neg (args[0]), not (args[0]), bool
    (value 'and'/'or', args), cmp (value op, args), arith (value op, args), path (value key,
    args[0]), index (args target, index), between (args x, low, high), in (args x, *tests),
    range (value (open_low, open_high), args low, high)."""

    kind: str
    value: Any = None
    args: tuple[Node, ...] = ()


def describe(token: Token) -> str:
    if token.kind == "end":
        return "the end"
    if token.kind == "str":
        return f'"{token.value}"'
    return f"'{token.value}'"


class FeelSyntaxError(Exception):
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
            # An unknown escape keeps its backslash (regular expressions: "\\d", "\\:").
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    raise FeelSyntaxError(pos, "unterminated string literal")


def tokenize(source: str, names: tuple[str, ...]) -> list[Token]:
    """``names``: variable names with spaces or extra name characters, longest first."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        char = source[pos]
        if char.isspace():
            pos += 1
            continue
        if char == '"':
            text, end = _string(source, pos)
            tokens.append(Token("str", text, pos))
            pos = end
            continue
        number = _NUMBER.match(source, pos)
        if number and not (char == "." and tokens and _ends_value(tokens[-1])):
            tokens.append(Token("num", Decimal(number.group()), pos))
            pos = number.end()
            continue
        if _WORD.match(source, pos):
            pos = _name(source, pos, names, tokens)
            continue
        if source.startswith("==", pos):
            raise FeelSyntaxError(pos, "'==' is not FEEL; FEEL compares with '='")
        op = next((o for o in (*_OPS, *_OPS_TAIL) if source.startswith(o, pos)), None)
        if op is None:
            raise FeelSyntaxError(pos, f"unexpected character {char!r}")
        tokens.append(Token("op", op, pos))
        pos += len(op)
    tokens.append(Token("end", None, pos))
    return tokens


def _ends_value(token: Token) -> bool:
    """Could ``token`` end an operand (so a following ``.`` is a path, not ``.5``)?"""
    if token.kind == "op":
        return token.value in (")", "]")
    return token.kind != "kw" or token.value in ("true", "false", "null")


def _name(source: str, pos: int, names: tuple[str, ...], tokens: list[Token]) -> int:
    """A name (possibly of several words) or a keyword at ``pos``; returns the end."""
    after_dot = bool(tokens) and tokens[-1].kind == "op" and tokens[-1].value == "."
    if not after_dot:
        for name in _KEYWORD_FUNCTIONS:
            end = pos + len(name)
            if source.startswith(name, pos) and source[end:].lstrip().startswith("("):
                tokens.append(Token("name", name, pos))
                return end
        for name in names:
            end = pos + len(name)
            if source.startswith(name, pos) and not _NAME_PART.match(source, end):
                tokens.append(Token("name", name, pos))
                return end
    match = _WORD.match(source, pos)
    assert match is not None
    if match.group() in _KEYWORDS and not after_dot:
        tokens.append(Token("kw", match.group(), pos))
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
    tokens.append(Token("name", " ".join(words), pos))
    return end


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        #: Inside ``]a..b[``: a ``[`` after the upper end closes the range, not an index.
        self.range_end = False

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
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
            raise FeelSyntaxError(token.pos, f"expected '{value}', found {describe(token)}")

    def parse(self) -> Node:
        node = self.expression()
        token = self.peek()
        if token.kind != "end":
            raise FeelSyntaxError(token.pos, f"unexpected {describe(token)}")
        return node

    def expression(self) -> Node:
        """An expression: textual forms (if, for, some, every) or a disjunction."""
        if self.accept("kw", "if"):
            test = self.expression()
            self.expect("kw", "then")
            then = self.expression()
            self.expect("kw", "else")
            return Node("if", None, (test, then, self.expression()))
        for keyword in ("for", "some", "every"):
            if self.accept("kw", keyword):
                return self.iteration(keyword)
        return self.disjunction()

    def iteration(self, keyword: str) -> Node:
        names: list[str] = []
        sources: list[Node] = []
        while True:
            token = self.next()
            if token.kind != "name":
                raise FeelSyntaxError(token.pos, f"expected a name after '{keyword}'")
            self.expect("kw", "in")
            low = self.additive()
            if self.accept("op", ".."):
                low = Node("span", None, (low, self.additive()))
            names.append(str(token.value))
            sources.append(low)
            if not self.accept("op", ","):
                break
        self.expect("kw", "return" if keyword == "for" else "satisfies")
        body = self.expression()
        return Node(keyword, tuple(names), (*sources, body))

    def disjunction(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FeelSyntaxError(self.peek().pos, f"nested deeper than {MAX_DEPTH}")
        operands = [self.conjunction()]
        while self.accept("kw", "or"):
            operands.append(self.conjunction())
        self.depth -= 1
        return operands[0] if len(operands) == 1 else Node("bool", "or", tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.comparison()]
        while self.accept("kw", "and"):
            operands.append(self.comparison())
        return operands[0] if len(operands) == 1 else Node("bool", "and", tuple(operands))

    def comparison(self) -> Node:
        left = self.additive()
        token = self.peek()
        if token.kind == "op" and token.value in ("=", "!=", "<", "<=", ">", ">="):
            self.next()
            return Node("cmp", token.value, (left, self.additive()))
        if self.accept("kw", "between"):
            low = self.additive()
            self.expect("kw", "and")
            return Node("between", None, (left, low, self.additive()))
        if self.accept("kw", "in"):
            return Node("in", None, (left, *self.tests()))
        if self.accept("kw", "instance"):
            self.expect("kw", "of")
            token = self.next()
            return Node("instance", str(token.value), (left,))
        return left

    def tests(self) -> tuple[Node, ...]:
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

    def test(self) -> Node:
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

    def interval(self, opening: str, low: Node | None = None) -> Node:
        low = self.additive() if low is None else low
        self.expect("op", "..")
        self.range_end = True
        high = self.additive()
        self.range_end = False
        closing = self.next()
        if closing.kind != "op" or closing.value not in ("]", ")", "["):
            raise FeelSyntaxError(closing.pos, "a range ends with ']', ')' or '['")
        return Node("range", (opening != "[", closing.value != "]"), (low, high))

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.peek().kind == "op" and self.peek().value in ("+", "-"):
            node = Node("arith", self.next().value, (node, self.multiplicative()))
        return node

    def multiplicative(self) -> Node:
        node = self.power()
        while self.peek().kind == "op" and self.peek().value in ("*", "/"):
            node = Node("arith", self.next().value, (node, self.power()))
        return node

    def power(self) -> Node:
        node = self.unary()
        while self.accept("op", "**"):
            node = Node("arith", "**", (node, self.unary()))
        return node

    def unary(self) -> Node:
        if self.accept("op", "-"):
            return Node("neg", None, (self.unary(),))
        node = self.primary()
        while True:
            if self.accept("op", "."):
                token = self.next()
                if token.kind != "name":
                    raise FeelSyntaxError(token.pos, "expected a name after '.'")
                node = Node("path", token.value, (node,))
            elif not self.range_end and self.accept("op", "["):
                index = self.expression()
                self.expect("op", "]")
                node = Node("index", None, (node, index))
            elif node.kind == "name" and self.at("op", "("):
                node = self.call(str(node.value))
            else:
                return node

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "kw" and token.value in ("if", "for", "some", "every"):
            return self.expression()  # a textual form as an operand (``a and some x in ...``)
        token = self.next()
        if token.kind in ("num", "str"):
            return Node("const", token.value)
        if token.kind == "name":
            return Node("name", token.value)
        if token.kind == "kw" and token.value in ("true", "false", "null"):
            return Node("const", {"true": True, "false": False, "null": None}[token.value])
        if token.kind == "kw" and token.value == "not":
            self.expect("op", "(")
            operand = self.expression()
            self.expect("op", ")")
            return Node("not", None, (operand,))
        if token.kind == "op" and token.value == "@":
            literal = self.next()
            if literal.kind != "str":
                raise FeelSyntaxError(literal.pos, "'@' must be followed by a string")
            return Node("call", "@", (Node("const", literal.value),))
        if token.kind == "op" and token.value == "{":
            return self.context()
        if token.kind == "op" and token.value == "(":
            node = self.expression()
            self.expect("op", ")")
            return node
        if token.kind == "op" and token.value == "[":
            items: list[Node] = []
            if not self.accept("op", "]"):
                items.append(self.expression())
                while self.accept("op", ","):
                    items.append(self.expression())
                self.expect("op", "]")
            return Node("list", None, tuple(items))
        raise FeelSyntaxError(token.pos, f"unexpected {describe(token)}")

    def call(self, name: str) -> Node:
        """``name(args)``; named arguments (``f(a: 1)``) keep their names."""
        self.expect("op", "(")
        args: list[Node] = []
        names: list[str | None] = []
        if not self.accept("op", ")"):
            while True:
                token, after = self.peek(), self.tokens[self.i + 1]
                if token.kind == "name" and after.kind == "op" and after.value == ":":
                    self.i += 2
                    names.append(str(token.value))
                else:
                    names.append(None)
                args.append(self.expression())
                if not self.accept("op", ","):
                    break
            self.expect("op", ")")
        named = tuple(names) if any(n is not None for n in names) else None
        return Node("call", name if named is None else (name, named), tuple(args))

    def context(self) -> Node:
        keys: list[str] = []
        values: list[Node] = []
        if not self.accept("op", "}"):
            while True:
                token = self.next()
                if token.kind not in ("name", "str", "kw"):
                    raise FeelSyntaxError(token.pos, "a context entry starts with a key")
                self.expect("op", ":")
                keys.append(str(token.value))
                values.append(self.expression())
                if not self.accept("op", ","):
                    break
            self.expect("op", "}")
        return Node("context", tuple(keys), tuple(values))


@lru_cache(maxsize=2048)
def compile_tree(source: str, names: tuple[str, ...]) -> Node:
    return _Parser(tokenize(source, names)).parse()
