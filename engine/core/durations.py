"""The one parser of durations given as float seconds or a ``timedelta`` (CONTRACT.md: both
are accepted wherever a duration is), with the range check each caller names."""

from __future__ import annotations

from datetime import timedelta

from engine.core.errors import EngineError
from engine.core.limits import shown

#: Durations a ``timedelta`` can still hold: every parsed value converts back.
MAX_SECONDS = timedelta.max.total_seconds()

Seconds = float | timedelta

#: Seconds a job or an external task stays locked by whoever took it (the job executor,
#: ``fetch_and_lock``, a worker pool) unless the caller says otherwise. Five minutes, as
#: Camunda 7's job executor (lockTimeInMillis) and Camunda 8's job workers (timeout) default
#: to: a lock that runs out while its handler still works lets a second worker run the same
#: task, which is worse than a crashed worker's task waiting a few minutes. Pools extend
#: their locks while a handler runs; see docs/external-tasks.md.
DEFAULT_LOCK_DURATION = 300.0


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
        # An integer too large for a float is over every maximum.
        result = float(value) if abs(value) < 1e300 else float("inf")
    else:
        raise error(f"{what} must be seconds or a timedelta, got {shown(value)}")
    # Written so that NaN fails too.
    low_ok = result > 0.0 if positive else result >= 0.0
    if not (low_ok and result <= maximum):
        low = "> 0" if positive else ">= 0"
        raise error(f"{what} must be {low} and at most {maximum:g} s, got {shown(value)}")
    return result
