"""A safe evaluator for FEEL, the expression language of DMN and Camunda 8.

Trisotech, Kogito and Camunda 8 users write conditions, mappings, timers and correlation keys in
FEEL (``language="https://www.omg.org/spec/DMN/20191111/FEEL/"`` on a condition, or ``=expr`` in
a Camunda 8 attribute), such as ``Vacation Approval = "Approved"``. BPMN is untrusted input, so
this is a tokenizer, parser (``engine.expressions.feel_syntax``) and tree walker; nothing reaches
``eval``/``exec``.

What it evaluates: the operators and literals of ``feel_syntax`` (including ``if``/``then``/
``else``, ``for ... return``, ``some``/``every ... satisfies``, context literals and temporal
literals); paths ``a.b`` (over a list of contexts they give the list of values, over dates their
``year``, ``month``..., over durations ``days``, ``hours``...); filters ``items[price > 10]``
(the element is ``item``, its entries are names) and 1-based (negative from the end) indexes;
``x in`` a value, a list, a range ``[1..10]`` or a list of those; ``instance of`` with FEEL's
type names; ``is defined(x)``; and the built-in functions of ``feel_builtins`` (strings, lists,
numbers, contexts, dates and durations). Not covered: user-defined functions (``function(x)``),
years-and-months durations (``P1Y``), time zones by name, ranges as values outside ``in`` and
``for``, and the extension functions of Camunda connectors (``fromAi``, ``bpmnError``): calling an
unknown function is an ``ExpressionError`` naming it.

Names may contain spaces, as FEEL allows: a run of words up to an operator or keyword is one
name. Where a variable's name holds a keyword or one of FEEL's extra name characters
(``. / - ' + *``), the longest variable name written at that point wins, so a variable
``list-price`` is read as itself, not as ``list - price``. Values follow FEEL's three-valued
logic: comparing unlike types, a missing context entry or ``not`` of a non-boolean give ``null``,
and a condition that is ``null`` does not hold. An unknown variable is an ``ExpressionError``
naming it and the element (``strict=False``, Camunda 8's rule for ``=expr``: it is ``null``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from engine.core.errors import ExpressionError
from engine.expressions import feel_values as v
from engine.expressions.feel_builtins import BUILTINS, PARAMETERS
from engine.expressions.feel_syntax import PLAIN_NAME, FeelSyntaxError, Node, compile_tree

__all__ = ["MARKER", "check", "evaluate", "evaluate_condition", "is_feel_language"]

#: Prefix ``engine.deploy.rewrites`` puts on the text of a FEEL condition so the script engine knows
#: its language (SpiffWorkflow keeps only the text). ``#`` cannot start a JUEL text.
MARKER: Final = "#feel:"
MAX_LENGTH: Final = 10_000
MAX_ITEMS: Final = 100_000
_MISSING: Final = object()
_TYPES: Final = {
    "number": lambda x: v.is_number(x),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "context": lambda x: isinstance(x, Mapping),
    "list": lambda x: isinstance(x, list),
    "date": lambda x: isinstance(x, date) and not isinstance(x, datetime),
    "date and time": lambda x: isinstance(x, datetime),
    "time": lambda x: isinstance(x, time),
    "days and time duration": lambda x: isinstance(x, timedelta),
    "Any": lambda x: x is not None,
    "Null": lambda x: x is None,
}
_PARTS: Final = {
    "year": "year",
    "month": "month",
    "day": "day",
    "hour": "hour",
    "minute": "minute",
    "second": "second",
}


def is_feel_language(language: str | None) -> bool:
    """FEEL by any of its names: the OMG URLs, ``feel``, ``FEEL-1.3``..."""
    return language is not None and "feel" in language.lower()


def _quote(text: str) -> str:
    return f"'{text}'" if len(text) <= 200 else f"'{text[:200]}...'"


def _error(source: str, element: str | None, message: str) -> ExpressionError:
    where = f" of element '{element}'" if element else ""
    return ExpressionError(f"FEEL expression {_quote(source)}{where}: {message}")


def _number_in(value: Any) -> Any:
    """Python numbers in, FEEL numbers (Decimal) out."""
    if v.is_number(value) and not isinstance(value, Decimal):
        return v.decimal(value)
    return value


class _Scope:
    """Variables, looked up innermost first."""

    def __init__(self, variables: Mapping[str, Any], parent: _Scope | None = None) -> None:
        self.variables = variables
        self.parent = parent

    def get(self, name: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.variables:
                return _number_in(scope.variables[name])
            scope = scope.parent
        return _MISSING


class _Evaluator:
    def __init__(self, source: str, element: str | None, strict: bool) -> None:
        self.source = source
        self.element = element
        self.strict = strict

    def fail(self, message: str) -> ExpressionError:
        return _error(self.source, self.element, message)

    def eval(self, node: Node, scope: _Scope) -> Any:
        kind, args = node.kind, node.args
        if kind == "const":
            return node.value
        if kind == "name":
            value = scope.get(node.value)
            if value is _MISSING:
                if self.strict:
                    raise self.fail(f"unknown variable '{node.value}'")
                return None
            return value
        if kind == "list":
            return [self.eval(a, scope) for a in args]
        if kind == "context":
            out: dict[str, Any] = {}
            inner = _Scope(out, scope)  # later entries see earlier ones
            for key, arg in zip(node.value, args, strict=True):
                out[key] = self.eval(arg, inner)
            return out
        if kind == "bool":
            return self.logic(node.value, args, scope)
        if kind == "not":
            value = self.eval(args[0], scope)
            return (not value) if isinstance(value, bool) else None
        if kind == "cmp":
            left, right = self.eval(args[0], scope), self.eval(args[1], scope)
            if node.value in ("=", "!="):
                same = v.equals(left, right)
                return same if same is None or node.value == "=" else not same
            return v.order(node.value, left, right)
        if kind == "between":
            x, low, high = (self.eval(a, scope) for a in args)
            return _logic_values("and", [v.order(">=", x, low), v.order("<=", x, high)])
        if kind == "in":
            value = self.eval(args[0], scope)
            results = [self.test(value, t, scope) for t in args[1:]]
            return True if True in results else (None if None in results else False)
        if kind == "instance":
            check = _TYPES.get(str(node.value))
            if check is None:
                raise self.fail(f"unknown type '{node.value}' after 'instance of'")
            return bool(check(self.eval(args[0], scope)))
        if kind == "arith":
            return v.arith(node.value, self.eval(args[0], scope), self.eval(args[1], scope))
        if kind == "neg":
            value = self.eval(args[0], scope)
            if isinstance(value, timedelta):
                return -value
            return -v.decimal(value) if v.is_number(value) else None
        if kind == "path":
            return _path(self.eval(args[0], scope), node.value)
        if kind == "index":
            return self.index(self.eval(args[0], scope), args[1], scope)
        if kind == "if":
            test = self.eval(args[0], scope)
            return self.eval(args[1] if test is True else args[2], scope)
        if kind in ("for", "some", "every"):
            return self.iterate(kind, node.value, args, scope)
        if kind == "call":
            return self.call(node, scope)
        raise self.fail(f"a {kind} cannot stand alone here")

    def logic(self, op: str, args: tuple[Node, ...], scope: _Scope) -> bool | None:
        decisive = op == "or"
        seen: list[Any] = []
        for arg in args:
            value = self.eval(arg, scope)
            if value is decisive:
                return bool(decisive)
            seen.append(value)
        return _logic_values(op, seen)

    def test(self, value: Any, test: Node, scope: _Scope) -> bool | None:
        if test.kind == "range":
            low, high = self.eval(test.args[0], scope), self.eval(test.args[1], scope)
            open_low, open_high = test.value
            above = v.order(">" if open_low else ">=", value, low)
            below = v.order("<" if open_high else "<=", value, high)
            return _logic_values("and", [above, below])
        candidate = self.eval(test, scope)
        if isinstance(candidate, list) and not isinstance(value, list):
            found = [v.equals(value, item) for item in candidate]
            return True if True in found else (None if None in found else False)
        return v.equals(value, candidate)

    def index(self, target: Any, selector: Node, scope: _Scope) -> Any:
        """``list[n]`` (1-based; negative from the end) or ``list[condition]`` (a filter)."""
        try:
            outer = self.eval(selector, scope) if _is_index(selector) else _MISSING
        except ExpressionError:
            outer = _MISSING
        if outer is not _MISSING and v.is_number(outer):
            if not isinstance(target, list):
                return None
            i = int(v.decimal(outer))
            if 0 < i <= len(target):
                return target[i - 1]
            if i < 0 and -i <= len(target):
                return target[i]
            return None
        items = target if isinstance(target, list) else [target]
        kept = []
        for item in items:
            local = dict(item) if isinstance(item, Mapping) else {}
            local.setdefault("item", item)  # an entry named item wins, as in feel-scala
            if self.eval(selector, _Scope(local, scope)) is True:
                kept.append(item)
        return kept

    def iterate(
        self, kind: str, names: tuple[str, ...], args: tuple[Node, ...], scope: _Scope
    ) -> Any:
        sources, body = args[:-1], args[-1]
        combos: list[dict[str, Any]] = [{}]
        for name, source in zip(names, sources, strict=True):
            next_combos = []
            for combo in combos:
                for item in self.items(source, _Scope(combo, scope)):
                    next_combos.append({**combo, name: item})
                    if len(next_combos) > MAX_ITEMS:
                        raise self.fail(f"more than {MAX_ITEMS} iterations")
            combos = next_combos
        if kind == "for":
            results: list[Any] = []
            for combo in combos:
                combo["partial"] = list(results)
                results.append(self.eval(body, _Scope(combo, scope)))
            return results
        values = [self.eval(body, _Scope(combo, scope)) for combo in combos]
        return _logic_values("or" if kind == "some" else "and", values)

    def items(self, source: Node, scope: _Scope) -> list[Any]:
        if source.kind == "span":
            low, high = (self.eval(a, scope) for a in source.args)
            if not (v.is_number(low) and v.is_number(high)):
                raise self.fail("a range in 'for' needs numbers")
            a, b = int(v.decimal(low)), int(v.decimal(high))
            if abs(b - a) > MAX_ITEMS:
                raise self.fail(f"more than {MAX_ITEMS} iterations")
            step = 1 if b >= a else -1
            return [Decimal(i) for i in range(a, b + step, step)]
        value = self.eval(source, scope)
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def call(self, node: Node, scope: _Scope) -> Any:
        name, named = node.value if isinstance(node.value, tuple) else (node.value, None)
        if name == "is defined":
            if len(node.args) != 1:
                raise self.fail("is defined() takes one argument")
            return self.defined(node.args[0], scope)
        function = BUILTINS.get(name)
        if function is None:
            raise self.fail(f"unknown function '{name}'")
        values = [self.eval(a, scope) for a in node.args]
        if named is not None:
            order = PARAMETERS.get(name)
            if order is None or any(n not in order for n in named if n is not None):
                raise self.fail(f"named arguments are not supported for '{name}'")
            by_name = dict(zip(named, values, strict=True))
            values = [by_name.get(p) for p in order]
            while values and values[-1] is None:
                values.pop()
        try:
            return function(*values)
        except TypeError as exc:
            raise self.fail(f"{name}(): {exc}") from None

    def defined(self, node: Node, scope: _Scope) -> bool:
        if node.kind == "name":
            return scope.get(node.value) is not _MISSING
        if node.kind == "path":
            target = self.eval(node.args[0], scope) if self.defined(node.args[0], scope) else None
            return isinstance(target, Mapping) and node.value in target
        try:
            return self.eval(node, scope) is not None
        except ExpressionError:
            return False


def _is_index(selector: Node) -> bool:
    """Could the selector be a number (an index) rather than a condition?"""
    return selector.kind not in ("cmp", "bool", "between", "in", "not", "instance", "some", "every")


def _logic_values(op: str, values: list[Any]) -> bool | None:
    decisive = op == "or"
    if decisive in values:
        return decisive
    return (not decisive) if all(isinstance(x, bool) for x in values) else None


def _path(target: Any, key: str) -> Any:
    if isinstance(target, Mapping):
        return _number_in(target.get(key))
    if isinstance(target, list):  # FEEL maps a path over a list of contexts
        return [_number_in(i.get(key)) if isinstance(i, Mapping) else None for i in target]
    if isinstance(target, date | time) and key in _PARTS:
        return Decimal(getattr(target, _PARTS[key]))
    if isinstance(target, date) and key == "weekday":
        return Decimal(target.isoweekday())
    if isinstance(target, timedelta):
        seconds = int(target.total_seconds())
        parts = {
            "days": seconds // 86400,
            "hours": seconds % 86400 // 3600,
            "minutes": seconds % 3600 // 60,
            "seconds": seconds % 60,
        }
        return Decimal(parts[key]) if key in parts else None
    return None


def _names(source: str, variables: Mapping[str, Any]) -> tuple[str, ...]:
    """Variable names that tokenizing word by word would split, written in ``source``."""
    special = {
        n
        for n in variables
        if isinstance(n, str) and n and not PLAIN_NAME.fullmatch(n) and n in source
    }
    return tuple(sorted(special, key=lambda n: (-len(n), n)))


def _source(text: str) -> str:
    source = text[len(MARKER) :] if text.startswith(MARKER) else text
    source = source.strip()
    return source[1:].strip() if source.startswith("=") else source


def _strict(text: str, strict: bool | None) -> bool:
    """Unknown variables fail, except in Camunda 8's ``=expr`` (where they are null)."""
    if strict is not None:
        return strict
    source = text[len(MARKER) :] if text.startswith(MARKER) else text
    return not source.strip().startswith("=")


def check(text: str) -> str | None:
    """Why ``text`` (``=expr`` or bare) is not a FEEL expression this evaluator reads, or None.
    Unknown functions count: they could only fail when reached."""
    source = _source(text)
    if not source:
        return "empty expression"
    if len(source) > MAX_LENGTH:
        return f"{len(source)} characters long (limit {MAX_LENGTH})"
    try:
        tree = compile_tree(source, ())
    except FeelSyntaxError as exc:
        return str(exc)
    unknown = sorted(_unknown_functions(tree))
    if unknown:
        return f"unknown function {', '.join(repr(n) for n in unknown)}"
    return None


def _unknown_functions(node: Node) -> set[str]:
    found: set[str] = set()
    if node.kind == "call":
        name = node.value[0] if isinstance(node.value, tuple) else node.value
        if name not in BUILTINS and name != "is defined":
            found.add(str(name))
    for arg in node.args:
        found |= _unknown_functions(arg)
    return found


def evaluate(
    text: str,
    variables: Mapping[str, Any],
    element: str | None = None,
    *,
    strict: bool | None = None,
) -> Any:
    """Evaluate a FEEL expression (``MARKER`` or ``=`` prefix allowed) against ``variables``;
    the result as JSON-able Python (see ``feel_values.plain``)."""
    return v.plain(evaluate_raw(text, variables, element, strict=strict))


def evaluate_raw(
    text: str,
    variables: Mapping[str, Any],
    element: str | None = None,
    *,
    strict: bool | None = None,
) -> Any:
    """Like ``evaluate``, but the FEEL value itself (durations stay ``timedelta``...)."""
    source = _source(text)
    if not source:
        raise _error(source, element, "empty expression")
    if len(source) > MAX_LENGTH:
        raise _error(source, element, f"{len(source)} characters long (limit {MAX_LENGTH})")
    try:
        tree = compile_tree(source, _names(source, variables))
    except FeelSyntaxError as exc:
        raise _error(source, element, str(exc)) from None
    return _Evaluator(source, element, _strict(text, strict)).eval(tree, _Scope(variables))


def evaluate_condition(
    text: str,
    variables: Mapping[str, Any],
    element: str | None = None,
    *,
    strict: bool | None = None,
) -> bool:
    """A FEEL condition: true holds; false and null (FEEL's unknown) do not."""
    value = evaluate(text, variables, element, strict=strict)
    if value is None or isinstance(value, bool):
        return value is True
    raise _error(_source(text), element, f"must be a boolean, got {value!r}")
