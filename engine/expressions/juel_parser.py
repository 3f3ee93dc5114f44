"""The syntax of the JUEL subset (``engine.expressions.juel``): tokens, the parser that builds
the AST, and the analysis of which variables an expression reads. Nothing here evaluates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from engine.core.errors import ExpressionError

MAX_DEPTH: Final = 100
#: Integers are 64-bit, as Java's ``long``.
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Node:
    """One AST node; ``kind`` says how to read ``value`` and ``args``.

    const: value. name: value is the identifier. list: args are the items. unary: value is
    the operator, args ``(operand,)``. chain: value is a tuple of operators of one precedence
    level, args the operands; left-associative chains stay flat so ``a && b && c ...`` does
    not make the tree (and the evaluator's recursion) deep. ternary: args ``(cond, then,
    else)``. member: value is the property, args ``(target,)``. index: args ``(target, key)``.
    call: value is the method, args ``(target, *arguments)``.
    """

    kind: str
    value: Any = None
    args: tuple[Node, ...] = ()


EXECUTION_NAME: Final = Node("name", "execution")


# --- tokens ------------------------------------------------------------------------------------


class Token(NamedTuple):
    kind: str  # value (a literal), name, op, end
    value: Any
    pos: int
    text: str


_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[^\W\d]\w*)"
    r"|(?P<str>'(?:[^'\\]|\\[\s\S])*'|\"(?:[^\"\\]|\\[\s\S])*\")"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:()\[\].,}])"
)
_ESCAPE = re.compile(r"\\([\s\S])")
_KEYWORD_OPS: Final = {"and": "&&", "or": "||", "not": "!", "eq": "==", "ne": "!=", "lt": "<"}
_KEYWORD_OPS.update({"gt": ">", "le": "<=", "ge": ">=", "div": "/", "mod": "%", "empty": "empty"})
_CONSTANTS: Final = {"true": True, "True": True, "false": False, "False": False}
_NULLS: Final = frozenset({"null", "None"})
# Binary operators by precedence (higher binds tighter); every level is left-associative.
_PREC: Final = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, ">": 4, "<=": 4, ">=": 4}
_PREC.update({"+": 5, "-": 5, "*": 6, "/": 6, "%": 6})
_PREFIX: Final = ("-", "!", "empty")


def quote(source: str) -> str:
    return f"'{source}'" if len(source) <= 200 else f"'{source[:200]}...'"


def _syntax(source: str, pos: int, message: str) -> ExpressionError:
    return ExpressionError(
        f"syntax error at position {pos} in expression {quote(source)}: {message}"
    )


def tokenize(source: str, start: int, template: bool) -> tuple[list[Token], int]:
    """Tokens from ``start`` up to the ``}`` closing a template expression (or the end of a
    bare expression). The grammar has no ``{``, so the first ``}`` outside a string closes it."""
    tokens: list[Token] = []
    pos = start
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            char = source[pos]
            if char in "'\"":
                raise _syntax(source, pos, "unterminated string literal")
            hint = " (use '==' to compare)" if char == "=" else ""
            raise _syntax(source, pos, f"unexpected character {char!r}{hint}")
        kind, text = match.lastgroup, match.group()
        if kind == "num":
            tokens.append(Token("value", _number_literal(source, pos, text), pos, text))
        elif kind == "str":
            tokens.append(Token("value", _string_literal(source, pos, text), pos, text))
        elif kind == "name" and text in _KEYWORD_OPS:
            tokens.append(Token("op", _KEYWORD_OPS[text], pos, text))
        elif kind == "name" and (text in _CONSTANTS or text in _NULLS):
            tokens.append(Token("value", _CONSTANTS.get(text), pos, text))
        elif kind == "name":
            if text == "instanceof":
                raise _syntax(source, pos, "'instanceof' is not supported")
            tokens.append(Token("name", text, pos, text))
        elif text == "}":
            if not template:
                raise _syntax(source, pos, "unexpected '}'")
            tokens.append(Token("end", None, pos, "}"))
            return tokens, pos + 1
        elif kind == "op":
            tokens.append(Token("op", text, pos, text))
        pos = match.end()
    if template:
        raise _syntax(source, start - 2, "missing '}' to close the expression")
    tokens.append(Token("end", None, pos, ""))
    return tokens, pos


def _number_literal(source: str, pos: int, text: str) -> int | float:
    if "." in text or "e" in text or "E" in text:
        return float(text)
    if len(text) > 19 or int(text) > INT_MAX:
        raise _syntax(source, pos, f"integer literal {text[:30]} is out of range")
    return int(text)


def _string_literal(source: str, pos: int, text: str) -> str:
    def unescape(match: re.Match[str]) -> str:
        if match.group(1) not in "'\"\\":
            at = pos + 1 + match.start()
            raise _syntax(source, at, f"invalid escape '\\{match.group(1)}' in string literal")
        return match.group(1)

    return _ESCAPE.sub(unescape, text[1:-1])


# --- parser ------------------------------------------------------------------------------------


class Parser:
    def __init__(self, source: str, tokens: list[Token]) -> None:
        self.source = source
        self.tokens = tokens
        self.index = 0
        self.depth = -1  # the outermost expression is not nested

    def parse(self) -> Node:
        node = self.expr()
        token = self.tokens[self.index]
        if token.kind != "end":
            raise self.error(token, f"unexpected {self.describe(token)}")
        return node

    def error(self, token: Token, message: str) -> ExpressionError:
        return _syntax(self.source, token.pos, message)

    @staticmethod
    def describe(token: Token) -> str:
        text = token.text if len(token.text) <= 30 else token.text[:30] + "..."
        return f"'{text}'" if text else "end of expression"

    def next(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def accept(self, op: str) -> bool:
        token = self.tokens[self.index]
        if token.kind == "op" and token.value == op:
            self.index += 1
            return True
        return False

    def expect(self, op: str) -> None:
        token = self.tokens[self.index]
        if not self.accept(op):
            raise self.error(token, f"expected '{op}', found {self.describe(token)}")

    def expr(self) -> Node:
        """A whole (sub)expression. Parentheses, brackets, arguments and ternary branches all
        come back here, so counting here bounds the nesting; binary operators are parsed with
        a shunting-yard loop and postfix/prefix operators with loops, so each nesting level
        costs at most three stack frames."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _too_deep(self.source)
        operands = [self.operand()]
        pending: list[str] = []
        while (token := self.tokens[self.index]).kind == "op" and token.value in _PREC:
            self.index += 1
            while pending and _PREC[pending[-1]] >= _PREC[token.value]:
                self.reduce(operands, pending.pop())
            pending.append(token.value)
            operands.append(self.operand())
        while pending:
            self.reduce(operands, pending.pop())
        node = operands[0]
        if self.accept("?"):
            then = self.expr()
            self.expect(":")
            node = Node("ternary", None, (node, then, self.expr()))
        self.depth -= 1
        return node

    @staticmethod
    def reduce(operands: list[Node], op: str) -> None:
        right, left = operands.pop(), operands.pop()
        if left.kind == "chain" and _PREC[left.value[0]] == _PREC[op]:
            # Same level and left-associative: extending the chain is the same as nesting.
            operands.append(Node("chain", (*left.value, op), (*left.args, right)))
        else:
            operands.append(Node("chain", (op,), (left, right)))

    def operand(self) -> Node:
        """Prefix operators, a primary, then any ``.name``, ``.name(args)`` and ``[key]``."""
        prefix: list[str] = []
        while (token := self.next()).kind == "op" and token.value in _PREFIX:
            prefix.append(token.value)
        if token.kind == "value":
            node = Node("const", token.value)
        elif token.kind == "name":
            self.check_name(token)
            if self.accept("("):
                raise self.error(token, f"function calls are not supported ('{token.value}')")
            node = Node("name", token.value)
        elif token.kind == "op" and token.value == "(":
            node = self.expr()
            self.expect(")")
        elif token.kind == "op" and token.value == "[":
            node = Node("list", None, self.arguments("]"))
        else:
            raise self.error(token, f"expected an operand, found {self.describe(token)}")
        while True:
            if self.accept("."):
                name = self.next()
                if name.kind != "name":
                    raise self.error(name, "expected a property name after '.'")
                self.check_name(name)
                if self.accept("("):
                    node = Node("call", name.value, (node, *self.arguments(")")))
                else:
                    node = Node("member", name.value, (node,))
            elif self.accept("["):
                node = Node("index", None, (node, self.expr()))
                self.expect("]")
            else:
                break
        for op in reversed(prefix):
            node = Node("unary", op, (node,))
        return node

    def arguments(self, close: str) -> tuple[Node, ...]:
        if self.accept(close):
            return ()
        items = [self.expr()]
        while self.accept(","):
            items.append(self.expr())
        self.expect(close)
        return tuple(items)

    def check_name(self, token: Token) -> None:
        # Dunder names are the road to Python internals; no BPMN model needs them.
        if token.value.startswith("__"):
            raise ExpressionError(
                f"name '{token.value}' at position {token.pos} is not allowed in expression "
                f"{quote(self.source)}"
            )


def _too_deep(source: str) -> ExpressionError:
    return ExpressionError(f"expression {quote(source)} is nested deeper than {MAX_DEPTH}")


def analyse(source: str, root: Node) -> frozenset[str]:
    """Check the tree depth (which bounds the evaluator's recursion) and collect the variable
    names read, iteratively so a hostile tree cannot overflow the stack here either."""
    names: set[str] = set()
    stack: list[tuple[Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(source)
        if node.kind == "name":
            names.add(node.value)
        children = node.args
        if node.kind in ("member", "call") and children[0] == EXECUTION_NAME:
            children = children[1:]  # the built-in, not a variable; getVariable('x') reads x
            arg = children[0] if node.value == "getVariable" and len(children) == 1 else None
            if arg is not None and arg.kind == "const" and isinstance(arg.value, str):
                names.add(arg.value)
        stack.extend((child, depth + 1) for child in children)
    return frozenset(names)
