"""``ManualClock``: virtual time for tests. Nothing moves until the test moves it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from engine.core.clock import ensure_utc

DEFAULT_START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class ManualClock:
    """A clock whose time only changes through ``advance()`` and ``set()``; thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = ensure_utc(start) if start is not None else DEFAULT_START
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: float | timedelta) -> datetime:
        """Move time forward by seconds or a timedelta; returns the new time."""
        delta = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if delta < timedelta(0):
            raise ValueError(f"a clock only moves forward; got {by!r}")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        when = ensure_utc(when)
        with self._lock:
            if when < self._now:
                raise ValueError(f"a clock only moves forward; {when} is before {self._now}")
            self._now = when
