"""Testing processes with pytest: virtual time and BPMN-aware assertions (public API).

The pytest plugin (``engine.testing.plugin``, registered on install) provides the fixtures
``process_engine``, ``clock`` and ``spillway_env`` and the ``--spillway-coverage`` option; see
docs/testing.md.
"""

from engine.testing.assertions import ProcessInstanceAssert, assert_that, use_engine
from engine.testing.clock import ManualClock
from engine.testing.environment import MockHandler, MockWorker, ProcessEnvironment
from engine.testing.helpers import (
    FailingHandler,
    advance_and_run,
    complete_external_task,
    fails_times,
)

__all__ = [
    "FailingHandler",
    "ManualClock",
    "MockHandler",
    "MockWorker",
    "ProcessEnvironment",
    "ProcessInstanceAssert",
    "advance_and_run",
    "assert_that",
    "complete_external_task",
    "fails_times",
    "use_engine",
]
