"""The engine's workflow and task classes: SpiffWorkflow's ``BpmnWorkflow`` and ``Task`` without
their idle log work.

SpiffWorkflow builds a log record's message and extras before it calls the logger: a workflow
record's extras list the id of every task whenever the ``spiff.workflow`` logger's own level is
unset (the default), a walk of the whole task tree at each construction and completion of an
instance; and each change of a task's state formats the state's name twice
(``TaskState.get_name`` builds a dict of every state at each call) and the task's extras, about
a tenth of a one-task ``start()``, made even when the record is then dropped. Here they are built
only when the logger would emit the record, so what is logged is unchanged and an unlogged call
builds nothing.

``EngineTask`` is SpiffWorkflow's ``Task`` with that one change; an ``EngineWorkflow``'s root is
one, and its children are made by ``EngineTask._add_child``, so the whole tree of the process
is. Subprocesses SpiffWorkflow makes while running keep its own ``Task`` (they are restored as
``EngineTask`` when the instance is loaded): both are stored alike (``engine.runtime.codec``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

_log = logging.getLogger("spiff.workflow")
_task_log = logging.getLogger("spiff.task")


class EngineTask(Task):  # type: ignore[misc]
    def _set_state(self, value: int) -> None:
        # Task._set_state, its records built only when the logger emits them.
        task: Any = self  # SpiffWorkflow's attributes are untyped
        if value != task._state:
            elapsed = time.time() - task.last_state_change
            task.last_state_change = time.time()
            task._state = value
            if _task_log.isEnabledFor(logging.INFO):
                _task_log.info(
                    f"State changed to {TaskState.get_name(value)}",
                    extra=self.collect_log_extras({"elapsed": elapsed}),
                )
        elif _task_log.isEnabledFor(logging.DEBUG):
            _task_log.debug(
                f"State set to {TaskState.get_name(value)}", extra=self.collect_log_extras()
            )

    def _add_child(self, task_spec: Any, state: int = TaskState.MAYBE) -> EngineTask:
        # Task._add_child, the child an EngineTask.
        if self.has_state(TaskState.PREDICTED_MASK) and state & TaskState.PREDICTED_MASK == 0:
            raise WorkflowException(
                "Attempt to add non-predicted child to predicted task", task_spec=self.task_spec
            )
        task = EngineTask(self.workflow, task_spec, self, state=state)
        task.thread_id = self.thread_id
        if state == TaskState.READY:
            task._ready()
        return task


class EngineWorkflow(BpmnWorkflow):  # type: ignore[misc]
    def __init__(
        self,
        spec: Any,
        subprocess_specs: dict[str, Any] | None = None,
        script_engine: Any = None,
        deserializing: bool = False,
    ) -> None:
        super().__init__(spec, subprocess_specs, script_engine, deserializing=True)
        if not deserializing:
            # Workflow.__init__'s new task tree, its root an EngineTask.
            self.task_tree = EngineTask(self, self.spec.start, state=TaskState.FUTURE)
            self.task_tree.task_spec._predict(self.task_tree, mask=TaskState.NOT_FINISHED_MASK)
            _log.info("Initialized workflow", extra=self.collect_log_extras())
            self.task_tree._ready()

    def collect_log_extras(self, dct: dict[str, Any] | None = None) -> dict[str, Any]:
        # Every workflow-level record SpiffWorkflow writes is INFO.
        if not _log.isEnabledFor(logging.INFO):
            return dct if dct is not None else {}
        extras: dict[str, Any] = super().collect_log_extras(dct)
        return extras


__all__ = ["EngineTask", "EngineWorkflow"]
