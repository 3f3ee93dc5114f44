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


def _logger(name: str) -> Any:
    log = logging.getLogger(name)
    level = log.level
    yield log
    log.setLevel(level)


@pytest.fixture
def spiff_logger() -> Any:
    yield from _logger("spiff.workflow")


@pytest.fixture
def task_logger() -> Any:
    yield from _logger("spiff.task")


def _engine() -> ProcessEngine:
    eng = ProcessEngine("sqlite://")
    eng.register_handler("work", lambda ctx: {"done": True})
    eng.deploy(process("one", service("Work", "work")))
    return eng


def _records_of_one_start(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    log.setLevel(logging.DEBUG)
    eng = _engine()
    with caplog.at_level(logging.DEBUG, logger=log.name):
        eng.start("one")
    return caplog.records


def test_records_spiffworkflow_emits_keep_their_extras(
    spiff_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    records = _records_of_one_start(spiff_logger, caplog)
    completed = [r for r in records if r.getMessage() == "Workflow completed"]
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


def test_task_state_changes_spiffworkflow_emits_keep_their_message_and_extras(
    task_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    records = _records_of_one_start(task_logger, caplog)
    changed = [r for r in records if r.getMessage() == "State changed to COMPLETED"]
    work = [r for r in changed if r.task_spec == "Work"]  # type: ignore[attr-defined]
    assert len(work) == 1
    assert work[0].state == "COMPLETED" and work[0].elapsed >= 0  # type: ignore[attr-defined]
    assert work[0].workflow_spec == "one"  # type: ignore[attr-defined]


def test_every_task_of_a_new_instance_is_an_engine_task_and_builds_no_unlogged_record(
    task_logger: logging.Logger,
) -> None:
    task_logger.setLevel(logging.WARNING)
    eng = _engine()
    definition = eng.commands.latest_definition("one")
    spec = eng.commands.model(definition)
    workflow = EngineWorkflow(spec.spec, spec.subprocess_specs)
    assert workflow.tasks and all(type(t) is EngineTask for t in workflow.tasks.values())
    task = next(iter(workflow.tasks.values()))
    task.collect_log_extras = None  # a record built anyway would call it and fail
    task._set_state(task.state)
    task._set_state(TaskState.CANCELLED)
    assert task.state == TaskState.CANCELLED
