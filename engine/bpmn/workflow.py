"""The engine's workflow class: SpiffWorkflow's ``BpmnWorkflow`` without its idle log walks.

SpiffWorkflow builds a workflow-level log record's extras before it calls the logger, and
whenever the ``spiff.workflow`` logger's own level is unset (the default) those extras list
the id of every task: a walk of the whole task tree at each construction and completion of an
instance, made even when the record is then dropped. Here the extras are built only when the
logger would emit the record, so what is logged is unchanged and an unlogged call walks
nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow

_log = logging.getLogger("spiff.workflow")


class EngineWorkflow(BpmnWorkflow):  # type: ignore[misc]
    def collect_log_extras(self, dct: dict[str, Any] | None = None) -> dict[str, Any]:
        # Every workflow-level record SpiffWorkflow writes is INFO.
        if not _log.isEnabledFor(logging.INFO):
            return dct if dct is not None else {}
        extras: dict[str, Any] = super().collect_log_extras(dct)
        return extras


__all__ = ["EngineWorkflow"]
