"""The one parser of durations given as float seconds or a ``timedelta`` (CONTRACT.md: both
are accepted wherever a duration is), with the range check each caller names."""

from __future__ import annotations

from datetime import timedelta

from engine.core.errors import EngineError

#: Durations a ``timedelta`` can still hold: every parsed value converts back.
MAX_SECONDS = timedelta.max.total_seconds()

Seconds = float | timedelta


def seconds(
    value: object,
    what: str,
    *,
    positive: bool = False,
    maximum: float = MAX_SECONDS,
    error: type[EngineError] = EngineError,
) -> float:
    """``value`` (float seconds or a timedelta) as float seconds, at least 0 (more than 0 when
    ``positive``) and at most ``maximum``; else ``error`` naming ``what``."""
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    else:
        raise error(f"{what} must be seconds or a timedelta, got {value!r}")
    # Written so that NaN fails too.
    low_ok = result > 0.0 if positive else result >= 0.0
    if not (low_ok and result <= maximum):
        low = "> 0" if positive else ">= 0"
        raise error(f"{what} must be {low} and at most {maximum:g} s, got {value!r}")
    return result
