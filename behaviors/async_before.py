"""Async before (``camunda:asyncBefore``): commit first, let a job call the handler."""

from __future__ import annotations

from behaviors.async_on_error import AsyncOnErrorBehavior
from engine.runtime.activation import Activation


class AsyncBeforeBehavior:
    """The call that reaches the task commits at once with a continuation job due now; the job
    executor then runs the task with async-on-error semantics (retries, then an incident)."""

    name = "async-before"

    def __init__(self) -> None:
        self._in_job = AsyncOnErrorBehavior()

    def execute(self, act: Activation) -> None:
        if act.in_job:
            self._in_job.execute(act)
        else:
            act.defer()
