"""EngineWorkflow: SpiffWorkflow's workflow-level log records, their extras built only when
they are emitted."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from engine import ProcessEngine
from engine.bpmn.workflow import EngineWorkflow
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
