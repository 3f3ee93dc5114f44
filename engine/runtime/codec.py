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
    BpmnSubWorkflowConverter,
    BpmnWorkflowConverter,
    TaskConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.serializer.helpers.encoder import create_encoder
from SpiffWorkflow.bpmn.serializer.helpers.spec import EventDefinitionConverter
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SPIFF_SERIALIZER_VERSION
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.event_definitions import (
    MessageEventDefinition as CamundaMessageEventDefinition,
)
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from engine.bpmn.specs import ServiceTask
from engine.bpmn.timer_events import Timer
from engine.bpmn.workflow import EngineTask, EngineWorkflow
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

    def fast_to_dict(self, workflow: Any) -> dict[str, Any]:
        """``to_dict``'s dict, made in about half the time: SpiffWorkflow's converters make
        each task id a string three times (as id, as parent, as child) and dispatch every
        task through the registry. Falls back to ``to_dict`` when a task or subprocess class
        is not converted by SpiffWorkflow's default converters (tests/unit/test_codec.py
        compares the two on every model of the test suite)."""
        subprocesses = {}
        for sid, sub in workflow.subprocesses.items():
            dct = self._workflow_dict(sub) if type(sub) is BpmnSubWorkflow else None
            if dct is None:
                return self.to_dict(workflow)
            dct["parent_task_id"] = str(sub.parent_task_id)
            dct["spec"] = sub.spec.name
            dct["typename"] = _SUBWORKFLOW_TYPENAME
            subprocesses[str(sid)] = dct
        top = self._workflow_dict(workflow)
        if top is None:
            return self.to_dict(workflow)
        top["subprocesses"] = subprocesses
        top["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return top

    def fast_from_spec(
        self, dct: dict[str, Any], spec: Any, subprocess_specs: dict[str, Any]
    ) -> Any:
        """``from_spec``'s workflow, restored in about half the time: SpiffWorkflow parses each
        task id from its string three times and dispatches every task through the registry.
        Falls back to ``from_spec`` for a task or subprocess another converter wrote
        (tests/unit/test_codec.py compares the two on every model of the test suite)."""
        if not _default_typenames(dct):
            return self.from_spec(dct, spec, subprocess_specs)
        uuids = _Uuids()
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        self._restore_tasks(workflow, dct, uuids)
        self.set_default_attributes(workflow, dct)
        self._restore_subprocesses(dct["subprocesses"], workflow, workflow, uuids)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow

    def _restore_tasks(self, workflow: Any, dct: dict[str, Any], uuids: _Uuids) -> None:
        # TaskConverter.from_dict for each task, in the stored order (a parent before its
        # children: a task's data is its parent's with its delta applied).
        restore = self.registry.restore
        specs = workflow.spec.task_specs
        tasks: dict[UUID, Any] = {}
        for key, task_dct in dct["tasks"].items():
            task_spec = specs.get(task_dct["task_spec"])
            task = EngineTask(
                workflow, task_spec, state=task_dct["state"], id=uuids(task_dct["id"])
            )
            parent_id = task_dct["parent"]
            task._parent = uuids(parent_id) if parent_id is not None else None
            task._children = [uuids(child) for child in task_dct["children"]]
            task.last_state_change = task_dct["last_state_change"]
            task.triggered = task_dct["triggered"]
            internal = task_dct["internal_data"]
            task.internal_data = restore(internal) if internal else {}
            if isinstance(task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
                task.workflow.top_workflow.event_manager.add_task(task)
            delta = task_dct.get("delta")
            parent = task.parent
            if delta and parent is not None:
                data = DeepMerge.merge({}, parent.data)
                data.update(restore(delta.get("updates", {})))
                for name in delta.get("deletions", {}):
                    if name in data:
                        del data[name]
            else:
                data = restore(task_dct["data"])
            task.data = data
            tasks[uuids(key)] = task
        workflow.tasks = tasks
        workflow.task_tree = tasks.get(uuids(dct["root"]))

    def _restore_subprocesses(
        self, dct: dict[str, Any], workflow: Any, top_workflow: Any, uuids: _Uuids
    ) -> None:
        # WorkflowConverter.subprocesses_from_dict with BpmnSubWorkflowConverter.from_dict.
        for task in list(workflow.tasks.values()):
            key = str(task.id)
            if not isinstance(task.task_spec, SubWorkflowTask) or key not in dct:
                continue
            sub_dct = dict(dct.pop(key))
            del sub_dct["typename"]
            spec = top_workflow.subprocess_specs.get(task.task_spec.spec)
            sub = BpmnSubWorkflow(spec, task.id, top_workflow, deserializing=True)
            self._restore_tasks(sub, sub_dct, uuids)
            self.set_default_attributes(sub, sub_dct)
            top_workflow.subprocesses[task.id] = sub
            sub.completed_event.connect(task.task_spec._on_subworkflow_completed, task)
            self._restore_subprocesses(dct, sub, top_workflow, uuids)

    def _workflow_dict(self, workflow: Any) -> dict[str, Any] | None:
        # WorkflowConverter.to_dict, with the tasks of TaskConverter.to_dict made here; None
        # for a task of another class than SpiffWorkflow's (its converter may differ).
        registry = self.registry
        convert = registry.convert
        tasks = workflow.tasks
        names = {tid: str(tid) for tid in tasks}
        converted: dict[str, Any] = {}
        for tid, task in tasks.items():
            if type(task) not in _TASK_CLASSES:
                return None
            name = names[tid]
            parent_id = task._parent
            parent = tasks.get(parent_id) if parent_id is not None else None
            if parent is None:
                data, delta = task.data, {}
            else:
                data = {}
                delta = {
                    "updates": DeepMerge.get_updated_keys(parent.data, task.data),
                    "deletions": DeepMerge.get_deleted_keys(parent.data, task.data),
                }
            converted[name] = {
                "id": name,
                "parent": names[parent_id] if parent is not None else None,
                "children": [names.get(child) or str(child) for child in task._children],
                "last_state_change": task.last_state_change,
                "state": task._state,
                "task_spec": task.task_spec.name,
                "triggered": task.triggered,
                "internal_data": convert(internal) if (internal := task.internal_data) else {},
                "data": data,
                "delta": delta,
                "typename": _TASK_TYPENAME,
            }
        last = workflow.last_task
        return {
            "data": convert(registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": str(last.id) if last is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": converted,
            "root": names.get(workflow.task_tree.id) or str(workflow.task_tree.id),
        }

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


#: What ``fast_to_dict`` writes for SpiffWorkflow's default task and subprocess converters.
_TASK_TYPENAME = "Task"
#: The task classes stored as SpiffWorkflow's ``Task`` (``EngineTask`` differs in logging only).
_TASK_CLASSES = (Task, EngineTask)
_SUBWORKFLOW_TYPENAME = "BpmnSubWorkflow"


class _Uuids:
    """Task ids parsed once per load (each appears as a key, an id, a parent and a child)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, UUID] = {}

    def __call__(self, text: str) -> UUID:
        found = self._seen.get(text)
        if found is None:
            found = self._seen[text] = UUID(text)
        return found


def _default_typenames(dct: dict[str, Any]) -> bool:
    """Whether every task and subprocess of a stored state was written by SpiffWorkflow's
    default converters (what ``fast_from_spec`` restores)."""
    if any(t.get("typename") != _TASK_TYPENAME for t in dct["tasks"].values()):
        return False
    for sub in dct["subprocesses"].values():
        if sub.get("typename") != _SUBWORKFLOW_TYPENAME:
            return False
        if any(t.get("typename") != _TASK_TYPENAME for t in sub["tasks"].values()):
            return False
    return True


class _Converters(threading.local):
    """One serializer registry per thread: its encoder-mode switch is per-call state."""

    def __init__(self) -> None:
        self.registry = BpmnWorkflowSerializer.configure(_config())
        # An EngineTask is stored as the Task it is (SpiffWorkflow's own TaskConverter).
        self.registry.typenames[EngineTask] = _TASK_TYPENAME
        # A converter registers itself with the registry it is given.
        self.workflow = _SpeclessWorkflowConverter(EngineWorkflow, self.registry)
        self.encoder = create_encoder(self.registry, None)
        #: ``json.dumps(..., cls=encoder, separators=...)``'s encoder, made once (it keeps no
        #: state between calls).
        self.json = self.encoder(separators=(",", ":"))
        _check_default_converters(self.registry)


def _check_default_converters(registry: Any) -> None:
    """``fast_to_dict`` and ``fast_from_spec`` do what SpiffWorkflow's TaskConverter and
    BpmnSubWorkflowConverter do; a configuration that converts them otherwise must not get them."""
    for cls, typename, converter in (
        (Task, _TASK_TYPENAME, TaskConverter),
        (BpmnSubWorkflow, _SUBWORKFLOW_TYPENAME, BpmnSubWorkflowConverter),
    ):
        to_dict = getattr(registry.convert_to_dict.get(typename), "args", (None, None))[1]
        from_dict = getattr(registry.convert_from_dict.get(typename), "args", (None,))[0]
        owners = {type(getattr(f, "__self__", None)) for f in (to_dict, from_dict)}
        target = getattr(getattr(from_dict, "__self__", None), "target_class", None)
        if registry.typenames.get(cls) != typename or owners != {converter} or target is not cls:
            raise RuntimeError(f"codec: {cls.__name__} is not converted by {converter.__name__}")


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
            dct = local.workflow.fast_to_dict(workflow)
            dct["format"] = FORMAT_VERSION
            dct["spiff"] = SPIFF_SERIALIZER_VERSION
            text: str = local.json.encode(dct)
            return text
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
        return self._local.workflow.fast_from_spec(dct, spec, subprocess_specs)
