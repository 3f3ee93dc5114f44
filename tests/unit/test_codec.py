"""The instance codec's fast dump writes exactly what SpiffWorkflow's own converters write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn.serializer.default.workflow import TaskConverter

from engine import ProcessEngine
from engine.cli import conformance
from engine.runtime import codec
from engine.runtime.commands import Commands
from tests.bpmnbuild import process, user

PUBLIC = Path(__file__).parent.parent / "bpmn" / "public"


def test_fast_dump_equals_spiffworkflows_on_public_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every state the public models pass through (subprocesses, call activities, loops,
    events, user tasks), dumped both ways, gives the same JSON text."""
    fast = codec._SpeclessWorkflowConverter.fast_to_dict
    compared: list[str] = []
    nested: list[str] = []

    def both(self: Any, workflow: Any) -> dict[str, Any]:
        mine = fast(self, workflow)
        encoder = codec.create_encoder(self.registry, None)
        theirs = self.to_dict(workflow)
        text = json.dumps(mine, cls=encoder)
        assert text == json.dumps(theirs, cls=encoder), workflow.spec
        # Loaded back both ways: the same tree, data, waits and subprocesses.
        specs = (workflow.spec, workflow.subprocess_specs)
        restored = self.fast_from_spec(json.loads(text), *specs)
        reference = self.from_spec(json.loads(text), *specs)
        assert _loaded(self, restored, encoder) == _loaded(self, reference, encoder)
        compared.append(workflow.spec.name)
        if workflow.subprocesses:
            nested.append(workflow.spec.name)
        return mine

    monkeypatch.setattr(codec._SpeclessWorkflowConverter, "fast_to_dict", both)
    results: list[conformance.Result] = []
    for folder in ("SpiffWorkflow", "camunda-8-tutorials", "zeebe-process-test"):
        results.extend(conformance.run(PUBLIC / folder))
    assert sum(r.outcome == conformance.RAN for r in results) >= 20
    # Many models, among them some with embedded subprocesses or call activities.
    assert len(compared) >= 200
    assert len(set(compared)) >= 25
    assert len(set(nested)) >= 3


def test_a_converter_other_than_spiffworkflows_default_is_refused() -> None:
    registry = codec.BpmnWorkflowSerializer.configure(codec._config())
    codec._check_default_converters(registry)  # the engine's configuration passes
    registry.typenames[codec.Task] = "MyTask"
    with pytest.raises(RuntimeError, match="Task is not converted by TaskConverter"):
        codec._check_default_converters(registry)


def _loaded(converter: Any, workflow: Any, encoder: Any) -> tuple[Any, ...]:
    """What a loaded workflow is made of, beyond its dump: waits, subprocess links, types."""
    return (
        json.dumps(fast(converter, workflow), cls=encoder),
        sorted(str(i) for i in workflow.event_manager.tasks),
        sorted(str(i) for i in workflow.subprocesses),
        [s.completed_event.n_subscribers() for s in workflow.subprocesses.values()],
        [type(s).__name__ for s in workflow.subprocesses.values()],
        {
            # The engine restores SpiffWorkflow's Task as EngineTask (its logging aside, the same).
            str(i): (_stored_class(t), t.thread_id, t.workflow is workflow)
            for i, t in workflow.tasks.items()
        },
        str(workflow.last_task.id) if workflow.last_task is not None else None,
    )


fast = codec._SpeclessWorkflowConverter.fast_to_dict


def _stored_class(task: Any) -> str:
    return "Task" if type(task) in codec._TASK_CLASSES else type(task).__name__


def _stored_class(task: Any) -> str:
    return "Task" if type(task) in codec._TASK_CLASSES else type(task).__name__


def test_a_task_of_another_class_goes_through_spiffworkflows_converters() -> None:
    """A task class the registry converts with a converter of its own is dumped and loaded by
    SpiffWorkflow's converters, not by the engine's fast path."""

    class MarkedTask(codec.Task):  # type: ignore[misc]
        pass

    eng = ProcessEngine("sqlite://")
    eng.deploy(process("p", user("U")))
    inst = eng.start("p")
    instance_codec = codec.InstanceCodec()
    registry = instance_codec._local.registry
    TaskConverter(MarkedTask, registry, typename="MarkedTask")
    row = eng.store.instance(inst.id)
    definition = eng.store.definition(row["definition_id"]) if row else None
    assert row is not None and definition is not None
    commands = next(v for v in vars(eng).values() if isinstance(v, Commands))
    model = commands.model(definition)
    loaded = instance_codec.load(row["data"], model.spec, model.subprocess_specs)
    waiting = next(t for t in loaded.tasks.values() if t.task_spec.bpmn_id == "U")
    waiting.__class__ = MarkedTask
    text = instance_codec.dump(loaded)
    assert '"typename":"MarkedTask"' in text  # written by the registry's converter
    again = instance_codec.load(text, model.spec, model.subprocess_specs)
    assert type(next(t for t in again.tasks.values() if t.task_spec.bpmn_id == "U")) is MarkedTask
