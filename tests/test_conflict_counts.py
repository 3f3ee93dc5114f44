"""The engine counts the optimistic-locking races its commands lose: ``conflicts_retried`` for
each re-run on fresh state, ``conflicts_failed`` when every attempt lost and the caller got
``ConcurrencyConflict`` (benchmarks/bench_concurrency.py reports both)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.errors import ConcurrencyConflict
from engine.runtime import commands
from tests.bpmnbuild import process, service, user
from tests.conftest import EngineFactory

PROCESS = process("p", user("Approve"), service("After", "after"))


def test_a_race_lost_on_every_attempt_is_counted_once_failed(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "CONFLICT_RETRIES", 3)
    eng, other = make_engine(), make_engine()
    calls: list[int] = []

    def after(ctx: Any) -> dict[str, int]:
        # Another node moves the instance on while this command runs: its commit loses.
        calls.append(1)
        other.set_variables(ctx.instance_id, {"moved": len(calls)})
        return {}

    eng.register_handler("after", after)
    eng.deploy(PROCESS)
    iid = eng.start("p").id
    with pytest.raises(ConcurrencyConflict):
        eng.complete_task(iid, "Approve")
    assert len(calls) == 3
    assert eng.stats["conflicts_retried"] == 2 and eng.stats["conflicts_failed"] == 1
    # Nothing of the lost attempts was written: the instance still waits, with the last move.
    inst = eng.get_instance(iid)
    assert inst.waiting_at == ["Approve"] and inst.variables == {"moved": 3}


def test_a_race_lost_once_is_retried_and_not_failed(make_engine: EngineFactory) -> None:
    eng, other = make_engine(), make_engine()
    calls: list[int] = []

    def after(ctx: Any) -> dict[str, bool]:
        calls.append(1)
        if len(calls) == 1:
            other.set_variables(ctx.instance_id, {"moved": True})
        return {"done": True}

    eng.register_handler("after", after)
    eng.deploy(PROCESS)
    iid = eng.start("p").id
    assert eng.complete_task(iid, "Approve").state == "completed"
    assert eng.stats["conflicts_retried"] == 1 and eng.stats["conflicts_failed"] == 0
    assert eng.get_instance(iid).variables == {"moved": True, "done": True}
