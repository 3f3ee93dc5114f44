"""Synchronous: call the handler in the caller's transaction; a failure reaches the caller."""

from __future__ import annotations

from engine.runtime.activation import Activation


class SyncBehavior:
    """Camunda's default service task: a technical failure rolls the whole call back and raises
    ``HandlerError`` (``start()`` leaves no instance, ``complete_task()`` changes nothing)."""

    name = "sync"

    def execute(self, act: Activation) -> None:
        failure = act.call()
        if failure is not None:
            act.fail(failure)
