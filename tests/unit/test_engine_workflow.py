"""EngineWorkflow: SpiffWorkflow's workflow-level log records, their extras built only when
they are emitted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from SpiffWorkflow.util.task import TaskState

from engine import ProcessEngine
from engine.bpmn.workflow import EngineTask, EngineWorkflow
from tests.bpmnbuild import process, service


@pytest.fixture
def spiff_logger() -> Any:
    log = logging.getLogger("spiff.workflow")
    level = log.level
    yield log
    log.setLevel(level)


def test_records_spiffworkflow_emits_keep_their_extras(
    spiff_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    spiff_logger.setLevel(logging.DEBUG)
    eng = ProcessEngine("sqlite://")
    eng.register_handler("work", lambda ctx: {"done": True})
    eng.deploy(process("one", service("Work", "work")))
    with caplog.at_level(logging.DEBUG, logger="spiff.workflow"):
        eng.start("one")
    completed = [r for r in caplog.records if r.getMessage() == "Workflow completed"]
    assert len(completed) == 1
    # SpiffWorkflow's own extras, the id of every task among them (its level is below INFO).
    assert completed[0].success is True  # type: ignore[attr-defined]
    assert len(completed[0].tasks) >= 5  # type: ignore[attr-defined]


def test_no_walk_of_the_tree_for_a_record_nobody_emits(spiff_logger: logging.Logger) -> None:
    spiff_logger.setLevel(logging.WARNING)
    workflow = EngineWorkflow.__new__(EngineWorkflow)  # no tree at all: a walk would fail
    assert workflow.collect_log_extras({"elapsed": 1}) == {"elapsed": 1}
    spiff_logger.setLevel(logging.INFO)
    with pytest.raises(AttributeError):
        workflow.collect_log_extras()


@pytest.fixture
def task_logger() -> Any:
    log = logging.getLogger("spiff.task")
    level = log.level
    yield log
    log.setLevel(level)


def test_task_state_changes_spiffworkflow_emits_keep_their_message_and_extras(
    task_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    task_logger.setLevel(logging.DEBUG)
    eng = ProcessEngine("sqlite://")
    eng.register_handler("work", lambda ctx: {"done": True})
    eng.deploy(process("one", service("Work", "work")))
    with caplog.at_level(logging.DEBUG, logger="spiff.task"):
        eng.start("one")
    changed = [r for r in caplog.records if r.getMessage() == "State changed to COMPLETED"]
    work = [r for r in changed if r.task_spec == "Work"]  # type: ignore[attr-defined]
    assert len(work) == 1
    assert work[0].state == "COMPLETED" and work[0].elapsed >= 0  # type: ignore[attr-defined]
    assert work[0].workflow_spec == "one"  # type: ignore[attr-defined]


def test_every_task_of_a_new_instance_is_an_engine_task_and_builds_no_unlogged_record(
    task_logger: logging.Logger,
) -> None:
    task_logger.setLevel(logging.WARNING)
    eng = ProcessEngine("sqlite://")
    eng.register_handler("work", lambda ctx: {"done": True})
    eng.deploy(process("one", service("Work", "work")))
    definition = eng.commands.latest_definition("one")
    spec = eng.commands.model(definition)
    workflow = EngineWorkflow(spec.spec, spec.subprocess_specs)
    assert workflow.tasks and all(type(t) is EngineTask for t in workflow.tasks.values())
    task = next(iter(workflow.tasks.values()))
    task.collect_log_extras = None  # a record built anyway would call it and fail
    task._set_state(task.state)
    task._set_state(TaskState.CANCELLED)
    assert task.state == TaskState.CANCELLED
