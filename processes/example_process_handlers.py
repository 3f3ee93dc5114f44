"""Handlers for ``example_process.bpmn``: the seed's ExampleProcess (50 parallel external tasks).

Each "Copy file" is an external task of topic ``copy``; ``copy_file`` is an ordinary handler that
a worker pool runs for that topic (``eng.worker_pool("copy")`` once ``register`` has run, or
``spillway worker --pools pools.toml``). Its result is the task's ``copy`` variable; the
multi-instance collects them into ``copies`` (in completion order).

The copy is simulated: nothing is written, so the example and the benchmark measure the
engine. The idempotency key (the external task's id) is what a real copy would use to make a
repeated delivery harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import ProcessEngine, TaskContext

TOPIC = "copy"


def files(count: int = 50) -> list[str]:
    """Start variables for one instance: ``{"files": files()}``."""
    return [f"in/file-{n:03}.dat" for n in range(count)]


def copy_file(ctx: TaskContext) -> Mapping[str, Any]:
    source = str(ctx.variables["file"])
    return {
        "copy": {
            "from": source,
            "to": source.replace("in/", "archive/", 1),
            "key": ctx.idempotency_key,
        }
    }


def register(engine: ProcessEngine) -> None:
    engine.register_handler(TOPIC, copy_file)
