"""Instance state to and from JSON, without the process spec.

SpiffWorkflow embeds the whole spec in every serialized instance (about half its size). The
spec belongs to the process definition, parsed once per version, so the stored state holds
only the task tree and data and is re-attached to the cached spec on load.

``FORMAT_VERSION`` is ours; SpiffWorkflow's serializer version is pinned and recorded beside it.
A bump of either gets a migration function in ``MIGRATIONS``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.config import DEFAULT_CONFIG
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnWorkflowConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.serializer.helpers.encoder import create_encoder
from SpiffWorkflow.bpmn.serializer.helpers.spec import EventDefinitionConverter
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SPIFF_SERIALIZER_VERSION
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.event_definitions import (
    MessageEventDefinition as CamundaMessageEventDefinition,
)

from engine.bpmn.specs import ServiceTask
from engine.bpmn.timer_events import Timer
from engine.core import deep_stack

FORMAT_VERSION = 1

#: from-version -> function upgrading a stored dict in place to the next version.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], None]] = {}


class _SpeclessWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    def to_dict(self, workflow: Any) -> dict[str, Any]:
        dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_spec(self, dct: dict[str, Any], spec: Any, subprocess_specs: dict[str, Any]) -> Any:
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class _TimerConverter(EventDefinitionConverter):  # type: ignore[misc]
    # Timers appear in stored state only inside caught events (an event-based gateway's).
    def to_dict(self, event_definition: Timer) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(event_definition)
        dct.update(
            expression=event_definition.expression,
            kind=event_definition.kind,
            event_id=event_definition.event_id,
        )
        return dct


def _config() -> dict[Any, Any]:
    # Camunda's task classes (forms, DMN, multi-instance) with the base message definition,
    # which our parser uses; our service task serializes like any plain task.
    config = dict(CAMUNDA_CONFIG)
    config.pop(CamundaMessageEventDefinition)
    config[MessageEventDefinition] = DEFAULT_CONFIG[MessageEventDefinition]
    config[ServiceTask] = BpmnTaskSpecConverter
    config[Timer] = _TimerConverter
    config.pop(BpmnWorkflow, None)
    return config


class _Converters(threading.local):
    """One serializer registry per thread: its encoder-mode switch is per-call state."""

    def __init__(self) -> None:
        self.registry = BpmnWorkflowSerializer.configure(_config())
        # A converter registers itself with the registry it is given.
        self.workflow = _SpeclessWorkflowConverter(BpmnWorkflow, self.registry)
        self.encoder = create_encoder(self.registry, None)


class InstanceCodec:
    """Dumps and loads a workflow's runtime state; thread-safe (converters per thread)."""

    def __init__(self) -> None:
        self._local = _Converters()

    def dump(self, workflow: Any) -> str:
        # SpiffWorkflow walks the task tree recursively: room for large models.
        return deep_stack.run(lambda: self._dump(workflow), len(workflow.spec.task_specs))

    def _dump(self, workflow: Any) -> str:
        local = self._local
        # Encoder mode, as SpiffWorkflow's serialize_json: to_dict leaves nested values to
        # the JSON encoder instead of converting them in a pass of their own.
        local.registry._encoder_mode = True
        try:
            dct = local.workflow.to_dict(workflow)
            dct["format"] = FORMAT_VERSION
            dct["spiff"] = SPIFF_SERIALIZER_VERSION
            return json.dumps(dct, cls=local.encoder, separators=(",", ":"))
        finally:
            local.registry._encoder_mode = False

    def load(self, text: str, spec: Any, subprocess_specs: dict[str, Any]) -> Any:
        return deep_stack.run(
            lambda: self._load(text, spec, subprocess_specs), len(spec.task_specs)
        )

    def _load(self, text: str, spec: Any, subprocess_specs: dict[str, Any]) -> Any:
        dct = json.loads(text)
        version = int(dct.pop("format", 1))
        while version < FORMAT_VERSION:
            MIGRATIONS[version](dct)
            version += 1
        dct.pop("spiff", None)
        return self._local.workflow.from_spec(dct, spec, subprocess_specs)
