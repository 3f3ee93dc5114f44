"""Which instance each fetched external task belongs to, remembered by the server that locked it.

A worker's ``complete`` names only the task; the report must join the other reports on the
task's instance (``engine.work.external_reports`` combines them into one write), so without
this index every completion first reads the task row to learn its instance: one more database
round trip per completion, about a seventh of its cost on PostgreSQL. A task's instance never
changes, so an entry can only be missing (evicted, or the task was fetched through another
node), never wrong; a missing entry falls back to that read. Bounded: the oldest entries go
first once ``capacity`` tasks are remembered.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

from engine.core.values import ExternalTask

CAPACITY = 100_000  # fetched tasks remembered (a few hundred bytes each)


class TaskIndex:
    """Fetched tasks by id, without their variables (what a report needs to find its instance)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._tasks: OrderedDict[str, ExternalTask] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, tasks: list[ExternalTask]) -> None:
        with self._lock:
            for task in tasks:
                self._tasks[task.id] = dataclasses.replace(task, variables={})
                self._tasks.move_to_end(task.id)
            while len(self._tasks) > self.capacity:
                self._tasks.popitem(last=False)

    def take(self, task_id: str) -> ExternalTask | None:
        """The fetched task, forgotten (a report ends its lock either way); None if unknown."""
        with self._lock:
            return self._tasks.pop(task_id, None)

    def __len__(self) -> int:
        return len(self._tasks)
