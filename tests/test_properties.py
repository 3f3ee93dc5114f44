"""Property-based tests (hypothesis): whatever the arguments or the model, a public call either
succeeds or raises an EngineError, and a failed call leaves every table as it was (issue 19).

Bounded to a few seconds per database; ``benchmarks/fuzz_api.py`` runs the same properties for
as long as asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from engine import ProcessEngine
from tests import hostile
from tests.bpmnbuild import process, user
from tests.conftest import EngineFactory

EXAMPLE = Path(__file__).parent.parent / "processes" / "example_process.bpmn"
BOUNDED = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture
def fuzzed(make_engine: EngineFactory) -> tuple[ProcessEngine, hostile.Target]:
    eng = make_engine(lazy_handlers=True)
    eng.deploy(process("p", user("U")))
    eng.deploy(EXAMPLE)
    inst = eng.start("p", business_key="bk")
    eng.start("ExampleProcess", variables={"files": ["a", "b", "c"]})
    task = eng.external_tasks.fetch_and_lock("copy-worker", topics=["copy"], max_tasks=1)[0]
    return eng, hostile.Target(instance=inst.id, task=task.id, job="0" * 32)


@BOUNDED
@given(call=hostile.calls)
def test_a_public_call_succeeds_or_raises_an_engine_error_and_writes_nothing(
    fuzzed: tuple[ProcessEngine, hostile.Target], call: tuple[Any, ...]
) -> None:
    eng, target = fuzzed
    hostile.check_call(eng, lambda: hostile.invoke(eng, call, target))


@settings(BOUNDED, max_examples=25)
@given(mutation=hostile.mutations, business_key=hostile.names)
def test_a_mutated_model_deploys_and_starts_or_raises_an_engine_error(
    fuzzed: tuple[ProcessEngine, hostile.Target], mutation: hostile.Mutation, business_key: Any
) -> None:
    eng, _ = fuzzed
    source = mutation.apply()
    deployed: list[Any] = []
    if hostile.check_call(eng, lambda: deployed.append(eng.deploy(source))):
        for key in deployed[0].process_keys:
            hostile.check_call(eng, lambda key=key: eng.start(key, business_key=business_key))
