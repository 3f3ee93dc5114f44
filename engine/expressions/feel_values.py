"""FEEL values: numbers as Decimal, equality and order with null for unlike types, arithmetic
(numbers, strings, dates and durations), and the conversion back to JSON-able Python values."""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any, Final

_ORDER: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_DURATION = re.compile(
    r"^(-)?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def is_temporal(value: Any) -> bool:
    return isinstance(value, date | time | timedelta)


def equals(a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return a is None and b is None
    if is_number(a) and is_number(b):
        return decimal(a) == decimal(b)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        pairs = [equals(x, y) for x, y in zip(a, b, strict=True)]
        return None if None in pairs else all(pairs)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            return False
        entries = [equals(a[k], b[k]) for k in a]
        return None if None in entries else all(entries)
    if type(a) is type(b) and isinstance(a, str | bool | date | time | timedelta):
        return bool(a == b)
    return None  # unlike types: null in FEEL


def order(op: str, a: Any, b: Any) -> bool | None:
    if is_number(a) and is_number(b):
        return bool(_ORDER[op](decimal(a), decimal(b)))
    if isinstance(a, str) and isinstance(b, str):
        return bool(_ORDER[op](a, b))
    if type(a) is type(b) and is_temporal(a):
        try:
            return bool(_ORDER[op](a, b))
        except TypeError:  # naive against aware
            return None
    return None  # unlike types (or null): null in FEEL


def arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if is_temporal(a) or is_temporal(b):
        return _temporal_arith(op, a, b)
    if not (is_number(a) and is_number(b)):
        return None
    x, y = decimal(a), decimal(b)
    try:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "**":
            return x**y
        return x / y
    except (DivisionByZero, InvalidOperation, OverflowError):
        return None  # FEEL: division by zero is null


def _temporal_arith(op: str, a: Any, b: Any) -> Any:
    try:
        if op == "+" and isinstance(b, timedelta) and isinstance(a, date | timedelta):
            return a + b
        if op == "+" and isinstance(a, timedelta) and isinstance(b, date):
            return b + a
        if op == "-" and isinstance(b, timedelta) and isinstance(a, date | timedelta):
            return a - b
        if op == "-" and type(a) is type(b) and isinstance(a, date):
            return a - b
        if op == "*" and isinstance(a, timedelta) and is_number(b):
            return a * float(decimal(b))
        if op == "*" and isinstance(b, timedelta) and is_number(a):
            return b * float(decimal(a))
        if op == "/" and isinstance(a, timedelta) and is_number(b):
            return a / float(decimal(b))
    except (TypeError, OverflowError, ZeroDivisionError):
        return None
    return None


def duration(text: str) -> timedelta | None:
    """An ISO 8601 day-time duration (``P1DT2H``, ``PT5M``, ``P2W``); None if it is not one."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT", "-P"):
        return None
    sign, weeks, days, hours, minutes, seconds = match.groups()
    value = timedelta(
        weeks=int(weeks or 0),
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=float(seconds or 0),
    )
    return -value if sign else value


def iso_duration(value: timedelta) -> str:
    total = value.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}P{int(days)}D" if days else f"{sign}P"
    clock = ""
    if hours:
        clock += f"{int(hours)}H"
    if minutes:
        clock += f"{int(minutes)}M"
    if seconds:
        clock += f"{seconds:g}S"
    if clock:
        out += "T" + clock
    return out if out not in ("P", "-P") else "PT0S"


def temporal(text: str) -> Any:
    """``@"..."``: a duration, a date-time, a date or a time, by its form."""
    value = duration(text)
    if value is not None:
        return value
    text = text.strip()
    for parse in (_datetime, date.fromisoformat, time.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def _datetime(text: str) -> datetime:
    if "T" not in text:
        raise ValueError(text)
    value = datetime.fromisoformat(text.replace("Z", "+00:00").split("@")[0])
    return value


def now() -> datetime:
    return datetime.now(UTC)


def plain(value: Any) -> Any:
    """FEEL values back to JSON-able Python: Decimals to int/float, durations to ISO text,
    dates and times to ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def to_string(value: Any) -> str | None:
    """FEEL's ``string(x)``."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        number = plain(decimal(value))
        return str(number)
    if isinstance(value, timedelta | date | time):
        return str(plain(value))
    if isinstance(value, list):
        return "[" + ", ".join(str(to_string(v)) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}:{to_string(v)}" for k, v in value.items()) + "}"
    return str(value)
