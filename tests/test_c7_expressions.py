"""Camunda 7 expressions where Camunda allows them: JUEL script tasks and mapping scripts,
``failedJobRetryTimeCycle`` and timers as expressions; script resources refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import DeploymentError, ProcessEngine
from engine.core.values import TaskContext
from engine.testing import ManualClock

MODEL = Path(__file__).parent / "bpmn" / "c7" / "juel_and_retry.bpmn"


def test_juel_script_task_mapping_retry_cycle_and_timer_expressions(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    seen: list[dict[str, Any]] = []

    def charge(ctx: TaskContext) -> None:
        seen.append(dict(ctx.variables))
        if len(seen) == 1:
            raise RuntimeError("gateway timeout")

    eng.register_handler("charge", charge)
    eng.deploy(MODEL)
    inst = eng.start(
        "juel_retry",
        variables={"price": 5, "quantity": 3, "retryCycle": "R2/PT7M", "waitFor": "PT2H"},
    )
    assert seen[0]["total"] == 15  # the JUEL script task's result variable
    assert seen[0]["double"] == 30  # a juel camunda:script in an input parameter
    [job] = eng.jobs(inst.id)
    # ${retryCycle} was evaluated when the retry was scheduled: R2/PT7M.
    assert job.retries_left == 2
    assert (job.due_at - clock.now()).total_seconds() == pytest.approx(420, abs=1)
    clock.advance(421)
    eng.run_jobs()
    got = eng.get_instance(inst.id)
    assert got.waiting_at == ["Wait"]
    [timer] = eng.jobs(inst.id)
    assert (timer.due_at - clock.now()).total_seconds() == pytest.approx(7200, abs=1)
    clock.advance(7201)
    eng.run_jobs()
    assert eng.get_instance(inst.id).state == "completed"


def test_script_resources_are_refused_with_the_reason(eng: ProcessEngine) -> None:
    xml = MODEL.read_bytes().replace(
        b'scriptFormat="juel" camunda:resultVariable="total"',
        b'scriptFormat="groovy" camunda:resource="deployment://total.groovy"',
    )
    eng.register_handler("charge", lambda ctx: None)
    with pytest.raises(DeploymentError) as err:
        eng.deploy(xml)
    assert "'Compute'" in str(err.value) and "deployment://total.groovy" in str(err.value)
