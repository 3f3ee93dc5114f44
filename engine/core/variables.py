"""Checking that variables are JSON-compatible before anything is stored.

Variables are dict/list/str/int/float/bool/None; the error names the variable and the path
inside it, so ``{"order": {"at": datetime(...)}}`` reports ``order.at``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from engine.core.errors import InvalidVariables
from engine.core.limits import MAX_NAME_LENGTH, bad_character, shown

MAX_DEPTH = 64
#: Integers have at most this many digits (Python's default int-to-text limit: a larger one
#: could be stored but not written as JSON text, nor read back).
MAX_INT_DIGITS = 4300
_INT_BOUND = 10**MAX_INT_DIGITS


def _check(value: Any, path: str, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidVariables(f"{where}: variable '{path}' is nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_INT_BOUND < value < _INT_BOUND:
            raise InvalidVariables(
                f"{where}: variable '{path}' is an integer of more than {MAX_INT_DIGITS} digits"
            )
        return
    if isinstance(value, str):
        why = bad_character(value)
        if why is not None:
            raise InvalidVariables(f"{where}: variable '{path}' {why}")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidVariables(f"{where}: variable '{path}' is {value}, which JSON cannot hold")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidVariables(
                    f"{where}: variable '{path}' has a key {shown(key)} that is not a string"
                )
            why = bad_character(key)
            if why is not None:
                raise InvalidVariables(f"{where}: variable '{path}' has a key that {why}")
            _check(item, f"{path}.{key}", where, depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", where, depth + 1)
        return
    raise InvalidVariables(
        f"{where}: variable '{path}' is a {type(value).__name__}, which is not JSON-compatible "
        "(use dict, list, str, int, float, bool or None)"
    )


def check_variables(variables: Any, where: str = "variables") -> dict[str, Any]:
    """Return the variables as a plain dict, or raise InvalidVariables naming the culprit."""
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise InvalidVariables(
            f"{where}: expected a mapping of variable names to values, "
            f"got {type(variables).__name__}"
        )
    for name, value in variables.items():
        if not isinstance(name, str) or not name:
            raise InvalidVariables(
                f"{where}: variable name {shown(name)} must be a non-empty string"
            )
        why = bad_character(name)
        if why is not None or len(name) > MAX_NAME_LENGTH:
            label = name if len(name) <= 40 else name[:37] + "..."
            raise InvalidVariables(
                f"{where}: variable name {label!r} "
                f"{why or f'is longer than {MAX_NAME_LENGTH} characters'}"
            )
        _check(value, name, where, 0)
    return dict(variables)
