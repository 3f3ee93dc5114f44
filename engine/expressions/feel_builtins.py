"""FEEL's built-in functions that BPMN files use: strings, lists, numbers, contexts, temporal
values and conversions. Arguments arrive as FEEL values (numbers as Decimal); a wrong argument
type gives null, as in FEEL."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from typing import Any, Final

from engine.expressions import feel_values as v

Builtin = Callable[..., Any]
MAX_PATTERN: Final = 500


def _str(x: Any) -> bool:
    return isinstance(x, str)


def _num(x: Any) -> bool:
    return v.is_number(x)


def _int(x: Any) -> int:
    return int(v.decimal(x))


def _substring(s: Any, start: Any, length: Any = None) -> Any:
    if not _str(s) or not _num(start):
        return None
    i = _int(start)
    begin = i - 1 if i > 0 else len(s) + i
    if length is None:
        return s[max(begin, 0) :]
    return s[max(begin, 0) : max(begin, 0) + _int(length)] if _num(length) else None


def _before(s: Any, match: Any) -> Any:
    if not (_str(s) and _str(match)):
        return None
    return s.split(match, 1)[0] if match in s else ""


def _after(s: Any, match: Any) -> Any:
    if not (_str(s) and _str(match)):
        return None
    return s.split(match, 1)[1] if match in s else ""


def _flags(flags: Any) -> int:
    out = 0
    for char in str(flags or ""):
        out |= {"i": re.IGNORECASE, "s": re.DOTALL, "m": re.MULTILINE, "x": re.VERBOSE}.get(char, 0)
    return out


def _pattern(pattern: Any, flags: Any = None) -> re.Pattern[str] | None:
    if not _str(pattern) or len(pattern) > MAX_PATTERN:
        return None
    try:
        return re.compile(pattern, _flags(flags))
    except re.error:
        return None


def _matches(s: Any, pattern: Any, flags: Any = None) -> Any:
    compiled = _pattern(pattern, flags)
    return None if compiled is None or not _str(s) else compiled.search(s) is not None


def _replace(s: Any, pattern: Any, replacement: Any, flags: Any = None) -> Any:
    compiled = _pattern(pattern, flags)
    if compiled is None or not _str(s) or not _str(replacement):
        return None
    return compiled.sub(re.sub(r"\$(\d)", r"\\\1", replacement), s)


def _split(s: Any, delimiter: Any) -> Any:
    compiled = _pattern(delimiter)
    return None if compiled is None or not _str(s) else compiled.split(s)


def _join(items: Any, delimiter: Any = "", prefix: Any = "", suffix: Any = "") -> Any:
    if not isinstance(items, list):
        return None
    parts = [x for x in items if x is not None]
    if not all(_str(x) for x in parts):
        return None
    return f"{prefix or ''}{(delimiter or '').join(parts)}{suffix or ''}"


def _number(s: Any, *_: Any) -> Any:
    if _num(s):
        return v.decimal(s)
    if not _str(s):
        return None
    try:
        return Decimal(s.strip())
    except InvalidOperation:
        return None


def _numbers(items: Any) -> list[Decimal] | None:
    if not isinstance(items, list) or not all(_num(x) for x in items):
        return None
    return [v.decimal(x) for x in items]


def _list_arg(args: tuple[Any, ...]) -> Any:
    """``sum([1, 2])`` and ``sum(1, 2)`` alike."""
    return args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)


def _sum(*args: Any) -> Any:
    nums = _numbers(_list_arg(args))
    return None if nums is None else sum(nums, Decimal(0))


def _mean(*args: Any) -> Any:
    nums = _numbers(_list_arg(args))
    return None if not nums else sum(nums, Decimal(0)) / len(nums)


def _extreme(pick: Callable[..., Any]) -> Builtin:
    def run(*args: Any) -> Any:
        items = _list_arg(args)
        if not isinstance(items, list) or not items:
            return None
        try:
            return pick(items, key=lambda x: v.decimal(x) if _num(x) else x)
        except TypeError:
            return None

    return run


def _count(items: Any) -> Any:
    return len(items) if isinstance(items, list) else None


def _append(items: Any, *more: Any) -> Any:
    return [*items, *more] if isinstance(items, list) else None


def _concatenate(*lists: Any) -> Any:
    if not all(isinstance(x, list) for x in lists):
        return None
    return [item for part in lists for item in part]


def _contains_item(items: Any, element: Any) -> Any:
    if not isinstance(items, list):
        return None
    return any(v.equals(x, element) for x in items)


def _distinct(items: Any) -> Any:
    if not isinstance(items, list):
        return None
    out: list[Any] = []
    for x in items:
        if not any(v.equals(x, y) for y in out):
            out.append(x)
    return out


def _flatten(items: Any) -> Any:
    if not isinstance(items, list):
        return None
    out: list[Any] = []
    for x in items:
        out.extend(_flatten(x) if isinstance(x, list) else [x])
    return out


def _sublist(items: Any, start: Any, length: Any = None) -> Any:
    if not isinstance(items, list) or not _num(start):
        return None
    i = _int(start)
    begin = i - 1 if i > 0 else len(items) + i
    end = None if length is None else begin + _int(length)
    return items[begin:end]


def _index_of(items: Any, match: Any) -> Any:
    if not isinstance(items, list):
        return None
    return [i + 1 for i, x in enumerate(items) if v.equals(x, match)]


def _remove(items: Any, position: Any) -> Any:
    if not isinstance(items, list) or not _num(position):
        return None
    i = _int(position)
    index = i - 1 if i > 0 else len(items) + i
    return [x for n, x in enumerate(items) if n != index]


def _sort(items: Any) -> Any:
    if not isinstance(items, list):
        return None
    try:
        return sorted(items, key=lambda x: v.decimal(x) if _num(x) else x)
    except TypeError:
        return None


def _all(*args: Any) -> Any:
    items = _list_arg(args)
    if any(x is False for x in items):
        return False
    return True if all(x is True for x in items) else None


def _any(*args: Any) -> Any:
    items = _list_arg(args)
    if any(x is True for x in items):
        return True
    return False if all(x is False for x in items) else None


def _get_value(context: Any, key: Any) -> Any:
    if isinstance(context, Mapping) and _str(key):
        return context.get(key)
    return None


def _get_entries(context: Any) -> Any:
    if not isinstance(context, Mapping):
        return None
    return [{"key": k, "value": x} for k, x in context.items()]


def _context_put(context: Any, key: Any, value: Any) -> Any:
    if not isinstance(context, Mapping) or not _str(key):
        return None
    return {**context, key: value}


def _context_merge(*args: Any) -> Any:
    items = _list_arg(args)
    if not all(isinstance(x, Mapping) for x in items):
        return None
    out: dict[str, Any] = {}
    for x in items:
        out.update(x)
    return out


def _round(mode: str) -> Builtin:
    def run(n: Any, scale: Any = 0) -> Any:
        if not _num(n) or not _num(scale):
            return None
        return v.decimal(n).quantize(Decimal(1).scaleb(-_int(scale)), rounding=mode)

    return run


def _modulo(a: Any, b: Any) -> Any:
    if not (_num(a) and _num(b)) or v.decimal(b) == 0:
        return None
    x, y = v.decimal(a), v.decimal(b)
    return x - y * (x / y).to_integral_value(rounding=ROUND_FLOOR)


def _sqrt(n: Any) -> Any:
    return v.decimal(n).sqrt() if _num(n) and v.decimal(n) >= 0 else None


def _date(*args: Any) -> Any:
    if len(args) == 3 and all(_num(a) for a in args):
        try:
            return date(*(_int(a) for a in args))
        except ValueError:
            return None
    value = args[0] if args else None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _date_and_time(*args: Any) -> Any:
    if len(args) == 2 and isinstance(args[0], date) and isinstance(args[1], time):
        return datetime.combine(args[0], args[1])
    value = args[0] if args else None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if isinstance(value, datetime) else None


def _time(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timetz()
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _duration(value: Any) -> Any:
    return v.duration(value) if _str(value) else None


def _string(value: Any, *_: Any) -> Any:
    return v.to_string(value)


def _abs(n: Any) -> Any:
    if isinstance(n, timedelta):
        return abs(n)
    return abs(v.decimal(n)) if _num(n) else None


def _even(n: Any) -> Any:
    return _int(n) % 2 == 0 if _num(n) else None


def _exp(n: Any) -> Any:
    return Decimal(math.exp(float(v.decimal(n)))) if _num(n) else None


def _string_fn(fn: Callable[[str], Any]) -> Builtin:
    return lambda s, *_: fn(s) if _str(s) else None


def _two_strings(fn: Callable[[str, str], Any]) -> Builtin:
    return lambda s, x: fn(s, x) if _str(s) and _str(x) else None


BUILTINS: Final[dict[str, Builtin]] = {
    # strings
    "substring": _substring,
    "substring before": _before,
    "substring after": _after,
    "string length": _string_fn(len),
    "upper case": _string_fn(str.upper),
    "lower case": _string_fn(str.lower),
    "trim": _string_fn(str.strip),
    "contains": _two_strings(lambda s, x: x in s),
    "starts with": _two_strings(str.startswith),
    "ends with": _two_strings(str.endswith),
    "matches": _matches,
    "replace": _replace,
    "split": _split,
    "string join": _join,
    "string": _string,
    "number": _number,
    # lists
    "count": _count,
    "sum": _sum,
    "mean": _mean,
    "min": _extreme(min),
    "max": _extreme(max),
    "append": _append,
    "concatenate": _concatenate,
    "list contains": _contains_item,
    "distinct values": _distinct,
    "union": lambda *lists: _distinct(_concatenate(*lists)),
    "flatten": _flatten,
    "sublist": _sublist,
    "reverse": lambda items: list(reversed(items)) if isinstance(items, list) else None,
    "index of": _index_of,
    "remove": _remove,
    "sort": _sort,
    "all": _all,
    "and": _all,
    "any": _any,
    "or": _any,
    "is empty": lambda items: len(items) == 0 if isinstance(items, list) else None,
    # contexts
    "get value": _get_value,
    "get entries": _get_entries,
    "context put": _context_put,
    "context merge": _context_merge,
    # numbers
    "abs": _abs,
    "floor": _round(ROUND_FLOOR),
    "ceiling": _round(ROUND_CEILING),
    "round up": _round(ROUND_UP),
    "round down": _round(ROUND_DOWN),
    "round half up": _round(ROUND_HALF_UP),
    "round half down": _round(ROUND_HALF_EVEN),
    "decimal": _round(ROUND_HALF_EVEN),
    "modulo": _modulo,
    "sqrt": _sqrt,
    "exp": _exp,
    "odd": lambda n: not _even(n) if _num(n) else None,
    "even": _even,
    # temporal values
    "now": v.now,
    "today": lambda: v.now().date(),
    "date": _date,
    "time": _time,
    "date and time": _date_and_time,
    "duration": _duration,
    "@": lambda text: v.temporal(text) if _str(text) else None,
    # Camunda 8: an AI agent's tool parameter is its value (the rest describes it to the model)
    "fromAi": lambda value, *_: value,
}

#: The parameter names of built-ins, for calls with named arguments (``substring(string: s,
#: start position: 2)``).
PARAMETERS: Final[dict[str, tuple[str, ...]]] = {
    "substring": ("string", "start position", "length"),
    "substring before": ("string", "match"),
    "substring after": ("string", "match"),
    "contains": ("string", "match"),
    "starts with": ("string", "match"),
    "ends with": ("string", "match"),
    "matches": ("input", "pattern", "flags"),
    "replace": ("input", "pattern", "replacement", "flags"),
    "split": ("string", "delimiter"),
    "string join": ("list", "delimiter", "prefix", "suffix"),
    "get value": ("m", "key"),
    "context put": ("context", "key", "value"),
    "sublist": ("list", "start position", "length"),
    "list contains": ("list", "element"),
    "decimal": ("n", "scale"),
    "floor": ("n", "scale"),
    "ceiling": ("n", "scale"),
    "modulo": ("dividend", "divisor"),
}
