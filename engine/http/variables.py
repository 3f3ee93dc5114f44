"""Camunda's typed variables <-> Spillway's JSON values.

On the wire a variable is ``{"value": ..., "type": "String", "valueInfo": {}}``. Spillway stores
plain JSON values, so:

- going out, the type follows the value: ``None`` -> Null, ``bool`` -> Boolean, ``int`` ->
  Integer (Long beyond 32 bits), ``float`` -> Double, ``str`` -> String, ``dict``/``list`` ->
  Json whose ``value`` is the JSON text (as Camunda sends Spin JSON; the JavaScript client parses
  it back, the Python client hands the text to the worker);
- coming in, a declared type is checked and converted (case-insensitive, as Camunda reads it):
  String, Integer, Long, Short, Double, Boolean, Null, Json (text or structure), Object with
  ``serializationDataFormat: application/json``, Date (kept as its ISO text). A missing type is
  inferred from the value, which is what the Python client sends (``{"value": 3}``). Bytes,
  File and Java-serialized Objects are refused with 400.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.http.dates import format_date, parse_date
from engine.http.errors import InvalidRequest

INT32 = 2**31
SUPPORTED = ("String", "Integer", "Long", "Short", "Double", "Boolean", "Null", "Json", "Object")


def type_of(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer" if -INT32 <= value < INT32 else "Long"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    return "Json"


def to_typed(value: Any) -> dict[str, Any]:
    kind = type_of(value)
    if kind == "Json":
        return {"type": "Json", "value": json.dumps(value, ensure_ascii=False), "valueInfo": {}}
    return {"type": kind, "value": value, "valueInfo": {}}


def to_typed_map(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: to_typed(value) for name, value in values.items()}


def from_typed_map(body: object, where: str = "variables") -> dict[str, Any]:
    """A ``{"name": {"value", "type"}}`` map as plain values; None or missing -> ``{}``."""
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise InvalidRequest(f"{where} must be an object of typed values, got {_show(body)}")
    return {str(name): from_typed(str(name), typed, where) for name, typed in body.items()}


def from_typed(name: str, typed: object, where: str = "variables") -> Any:
    if typed is None:
        return None
    if not isinstance(typed, Mapping):
        raise InvalidRequest(
            f"{where}: variable '{name}' must be an object with 'value' and 'type', "
            f"got {_show(typed)}"
        )
    value = typed.get("value")
    declared = typed.get("type")
    if declared is None or declared == "":
        return value
    if not isinstance(declared, str):
        raise InvalidRequest(f"{where}: variable '{name}': type must be a string")
    kind = declared.lower()
    info = typed.get("valueInfo") or {}
    if not isinstance(info, Mapping):
        raise InvalidRequest(f"{where}: variable '{name}': valueInfo must be an object")
    if value is None:
        if kind in ("bytes", "file"):
            raise _unsupported(name, declared, where)
        return None
    try:
        return _convert(kind, value, info)
    except (ValueError, TypeError):
        raise InvalidRequest(
            f"{where}: variable '{name}': cannot read {_show(value)} as {declared}"
        ) from None
    except KeyError:
        raise _unsupported(name, declared, where) from None


def _convert(kind: str, value: Any, info: Mapping[str, Any]) -> Any:
    if kind == "string":
        if not isinstance(value, str):
            raise TypeError
        return value
    if kind in ("integer", "long", "short"):
        return _integer(kind, value)
    if kind == "double":
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value)
        raise TypeError
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TypeError
    if kind == "null":
        return None
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if kind == "object":
        fmt = str(info.get("serializationDataFormat") or "application/json")
        if not fmt.startswith("application/json"):
            raise KeyError(kind)
        return json.loads(value) if isinstance(value, str) else value
    if kind == "date":
        if not isinstance(value, str):
            raise TypeError
        return format_date(parse_date(value, "Date variable"))
    raise KeyError(kind)


def _integer(kind: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        value = int(value)
    elif isinstance(value, str):
        value = int(value)
    if not isinstance(value, int):
        raise TypeError
    limit = {"integer": INT32, "short": 2**15, "long": 2**63}[kind]
    if not -limit <= value < limit:
        raise ValueError
    return value


def _unsupported(name: str, declared: str, where: str) -> InvalidRequest:
    return InvalidRequest(
        f"{where}: variable '{name}': type {declared} is not supported by Spillway "
        f"(supported: {', '.join(SUPPORTED)}, Date)"
    )


def _show(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
