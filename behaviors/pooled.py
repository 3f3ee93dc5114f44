"""Pooled (``spillway:pooled="true"``): the handler runs in a worker pool, not in the caller.

The task becomes an external task whose topic is its handler's name, so the pool registered
for that name (``eng.worker_pool(name)``, or ``spillway worker --pools FILE``) runs it with the
same handler and the same ``TaskContext``. Moving a slow handler off the caller's thread is one
attribute in the BPMN file; the handler itself does not change.
"""

from __future__ import annotations

from engine.runtime.activation import Activation


class PooledBehavior:
    """Commits an external task of topic = handler name; a worker pool calls the handler."""

    name = "pooled"

    def execute(self, act: Activation) -> None:
        topic = act.handler_name
        if not topic:  # deployment refuses a service task without a handler
            raise ValueError(f"pooled task '{act.activity_id}' has no handler")
        act.open_external_task(topic)
