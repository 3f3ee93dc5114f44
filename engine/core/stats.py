"""Counters of things an operator or a benchmark wants to see without parsing logs.

``ProcessEngine.stats`` holds one ``Counters``; names in use:

- ``conflicts_retried``: commands re-run after losing an optimistic-locking race on an instance
  (or on a job's or external task's lock), inside the engine, never seen by the caller.
- ``conflicts_failed``: commands whose every attempt lost such a race, so that
  ``ConcurrencyConflict`` reached the caller.
- ``external_completed``, ``external_duplicates``: external task completions applied, and
  completions ignored because the task had already been completed (or cancelled).
- ``external_batches``: instance writes that applied external task reports; fewer than the
  reports when concurrent reports on one instance were combined into one write.
"""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    """Thread-safe named counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def __repr__(self) -> str:
        return f"Counters({self.snapshot()})"
