"""Retry policies for failed service tasks.

``retries`` counts the attempts *after* the failed synchronous one, as Camunda's
``failedJobRetryTimeCycle`` does: ``R3/PT5M`` is one synchronous attempt, then up to three job
attempts five minutes apart. When they are used up ``next_delay`` returns None and the engine
opens an incident. Randomness is injected so schedules are reproducible in tests.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from engine.core import durations
from engine.core.errors import EngineError
from engine.core.timers import Duration, TimerError, parse_duration

__all__ = ["RetryPolicy", "RetryPolicyError", "next_delay"]

Seconds = durations.Seconds
# timedelta cannot hold more; keeps every computed delay convertible.
_MAX_SECONDS = durations.MAX_SECONDS


class RetryPolicyError(EngineError):
    """An invalid retry policy, retry cycle text or retry question."""


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(name: str, value: object) -> float:
    return durations.seconds(value, name, error=RetryPolicyError)


@dataclass(frozen=True, init=False)
class RetryPolicy:
    """How often and how long apart a failed task is retried.

    Durations may be given as float seconds or ``timedelta``; they are stored as float seconds.
    The ``__init__`` is hand-written (``init=False``) so it can accept both while the attributes
    stay typed ``float``; ``dataclasses.replace`` goes through it and so re-validates.
    """

    retries: int
    initial_delay: float
    backoff_coefficient: float
    max_delay: float
    jitter: float
    non_retryable: tuple[type[BaseException], ...]
    delays: tuple[float, ...] | None  # an explicit schedule; the last entry repeats

    def __init__(
        self,
        retries: int = 3,
        initial_delay: Seconds = 1.0,
        backoff_coefficient: float = 2.0,
        max_delay: Seconds = 300.0,
        jitter: float = 0.1,
        non_retryable: Iterable[type[BaseException]] | type[BaseException] = (),
        delays: Iterable[Seconds] | None = None,
    ) -> None:
        # Validated here rather than in __post_init__ so the attributes can be typed float.
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise RetryPolicyError(f"retries must be an int >= 0, got {retries!r}")
        initial = _seconds("initial_delay", initial_delay)
        cap = _seconds("max_delay", max_delay)
        if cap < initial:
            raise RetryPolicyError(f"max_delay must be >= initial_delay ({initial:g}), got {cap:g}")
        if not _is_real(backoff_coefficient) or not 1.0 <= backoff_coefficient < math.inf:
            raise RetryPolicyError(f"backoff_coefficient must be >= 1, got {backoff_coefficient!r}")
        if not _is_real(jitter) or not 0.0 <= jitter <= 1.0:
            raise RetryPolicyError(f"jitter must be between 0 and 1, got {jitter!r}")
        kinds = (non_retryable,) if isinstance(non_retryable, type) else tuple(non_retryable)
        for kind in kinds:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise RetryPolicyError(f"non_retryable must hold exception classes, got {kind!r}")
        schedule = None
        if delays is not None:
            schedule = tuple(_seconds(f"delays[{i}]", value) for i, value in enumerate(delays))
            if not schedule:
                raise RetryPolicyError("delays must not be empty (use None for backoff)")
        put = object.__setattr__  # the dataclass is frozen
        put(self, "retries", retries)
        put(self, "initial_delay", initial)
        put(self, "backoff_coefficient", float(backoff_coefficient))
        put(self, "max_delay", cap)
        put(self, "jitter", float(jitter))
        put(self, "non_retryable", kinds)
        put(self, "delays", schedule)

    @classmethod
    def parse(cls, text: str) -> RetryPolicy:
        """Parse Camunda's ``failedJobRetryTimeCycle``: ``R5/PT1M``, ``PT1M,PT5M``, ``PT5M``.

        Intervals are fixed (no backoff, no jitter), as Camunda schedules them.
        """
        stripped = text.strip()
        if not stripped or len(stripped) > 200:
            raise RetryPolicyError(f"invalid retry cycle {text[:60]!r}: empty or too long")
        try:
            if stripped[:1].upper() == "R":
                count, slash, interval = stripped[1:].partition("/")
                if not slash or not count.isdigit() or len(count) > 9:
                    raise RetryPolicyError("expected R<count>/<duration>; the count is required")
                delay = _fixed_seconds(interval)
                return cls.fixed(int(count), delay)
            delays = tuple(_fixed_seconds(part) for part in stripped.split(","))
            if len(delays) == 1:
                return cls.fixed(3, delays[0])  # Camunda's default of three retries
            return cls(
                retries=len(delays),
                initial_delay=delays[0],
                backoff_coefficient=1.0,
                max_delay=max(delays),
                jitter=0.0,
                delays=delays,
            )
        except (RetryPolicyError, TimerError) as exc:
            raise RetryPolicyError(f"invalid retry cycle {text!r}: {exc}") from None

    @classmethod
    def fixed(cls, retries: int, delay: Seconds) -> RetryPolicy:
        """``retries`` attempts ``delay`` apart, without backoff or jitter."""
        return cls(
            retries=retries,
            initial_delay=delay,
            backoff_coefficient=1.0,
            max_delay=delay,
            jitter=0.0,
        )

    def next_delay(
        self, failures: int, rand: Callable[[], float] = random.random
    ) -> timedelta | None:
        """See the module-level ``next_delay``."""
        return next_delay(self, failures, rand)

    def is_retryable(self, exc: BaseException) -> bool:
        """False for exceptions the policy names as not worth retrying."""
        return not isinstance(exc, self.non_retryable)

    def with_overrides(self, **changes: Any) -> RetryPolicy:
        """A copy with some fields changed (validated like a new policy)."""
        return dataclasses.replace(self, **changes)


def _fixed_seconds(text: str) -> float:
    duration: Duration = parse_duration(text.strip())
    if duration.years or duration.months:
        # A calendar month has no fixed length; a retry delay must.
        raise RetryPolicyError("retry delays need days or weeks, not years or months")
    return duration.rest.total_seconds()


def next_delay(
    policy: RetryPolicy, failures: int, rand: Callable[[], float] = random.random
) -> timedelta | None:
    """The wait before the next attempt after ``failures`` failed attempts; None when exhausted.

    ``failures`` counts the synchronous attempt, so ``failures=1`` asks for the delay before
    job attempt 1. The cap applies before jitter, so jitter may exceed ``max_delay`` by up to
    ``jitter * max_delay``.
    """
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise RetryPolicyError(f"failures must be an int >= 1, got {failures!r}")
    if failures > policy.retries:
        return None
    if policy.delays is not None:
        base = policy.delays[min(failures - 1, len(policy.delays) - 1)]
    else:
        try:
            grown = policy.initial_delay * policy.backoff_coefficient ** (failures - 1)
        except OverflowError:
            grown = math.inf
        base = min(grown, policy.max_delay)
    seconds = max(0.0, base * (1.0 + policy.jitter * (2.0 * rand() - 1.0)))
    return timedelta(seconds=min(seconds, _MAX_SECONDS))
