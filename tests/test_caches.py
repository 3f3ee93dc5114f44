"""Every cache of an engine has a bound, and a value dropped at the bound is rebuilt from the
database when needed again (docs/benchmarks.md, "Memory")."""

from __future__ import annotations

import pytest

from engine.runtime import commands
from engine.work import external_tasks
from tests.bpmnbuild import process, service
from tests.conftest import EngineFactory


def test_every_cache_of_an_engine_is_bounded(make_engine: EngineFactory) -> None:
    eng = make_engine()
    caches = eng.caches()
    assert {c.name for c in caches} == {
        "models",
        "definitions",
        "retry policies",
        "external task configs",
        "history time to live",
    }
    assert all(c.maxsize >= 1 for c in caches)


def test_models_beyond_the_bound_are_dropped_and_parsed_again(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "MODEL_CACHE_SIZE", 2)
    monkeypatch.setattr(commands, "DEFINITION_CACHE_SIZE", 3)
    monkeypatch.setattr(external_tasks, "CONFIG_CACHE_SIZE", 1)
    eng = make_engine()
    eng.register_handler("work", lambda ctx: {"done": ctx.process_key})
    keys = [f"p{i}" for i in range(5)]
    for key in keys:
        eng.deploy(process(key, service("Work", "work")))
    by_name = {c.name: c for c in eng.caches()}
    for _ in range(2):  # the second pass needs every model again, after it was dropped
        for key in keys:
            inst = eng.start(key)
            assert inst.state == "completed" and inst.variables == {"done": key}
            assert len(by_name["models"]) <= 2
            assert len(by_name["definitions"]) <= 3
    assert by_name["models"].evictions >= 8
    # External-task configs: one kept, the others read again from their models.
    for key in ("e1", "e2"):
        eng.deploy(
            process(key, service("Remote", extra='camunda:type="external" camunda:topic="t"'))
        )
        eng.start(key)
    for task in eng.external_tasks.fetch_and_lock("w", ["t"], max_tasks=10):
        assert eng.external_tasks.retry_policy(task).retries == eng.retry_policy.retries
        assert eng.external_tasks.complete(task.id, "w")
    assert len(by_name["external task configs"]) == 1
    assert [i.state for i in eng.instances(process_key="e1")] == ["completed"]
