"""Deleting deployments and cleaning up the history of ended instances."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import EngineError, InvalidOperation, NotFound, ProcessEngine
from engine.testing import ManualClock
from tests.bpmnbuild import process, user

DAY = 86400.0


def quick(key: str, ttl: str | None = None) -> bytes:
    attrs = f'camunda:historyTimeToLive="{ttl}"' if ttl is not None else ""
    return process(key, user("A"), process_attrs=attrs)


def finish(eng: ProcessEngine, key: str) -> str:
    inst = eng.start(key, {"n": 1})
    eng.set_variables(inst.id, {"n": 2})
    eng.complete_task(inst.id, "A")
    return inst.id


def test_cleanup_honours_process_ttl_and_engine_default(
    make_engine: object, clock: ManualClock
) -> None:
    eng: ProcessEngine = make_engine(history_time_to_live=timedelta(days=10))  # type: ignore[operator]
    eng.deploy(quick("days", "5"))
    eng.deploy(quick("iso", "PT12H"))
    eng.deploy(quick("default"))
    days, iso, default = finish(eng, "days"), finish(eng, "iso"), finish(eng, "default")
    running = eng.start("days").id
    cancelled = eng.start("iso").id
    eng.cancel(cancelled, reason="test")
    assert eng.cleanup_history() == 0
    clock.advance(13 * 3600)
    assert eng.cleanup_history() == 2  # the PT12H ones, completed and terminated
    with pytest.raises(NotFound):
        eng.history(iso)
    with pytest.raises(NotFound):
        eng.get_instance(cancelled)
    assert eng.variable_history(days)  # the others stay
    clock.advance(5 * DAY)
    assert eng.cleanup_history() == 1
    with pytest.raises(NotFound):
        eng.get_instance(days)
    assert eng.get_instance(running).state == "active"  # running ones are never touched
    assert eng.cleanup_history(now=clock.now() + timedelta(days=10)) == 1
    with pytest.raises(NotFound):
        eng.get_instance(default)
    with eng.store.transaction(write=False) as conn:
        for table in ("sw_history", "sw_variable_history"):
            left = conn.exec_driver_sql(f"SELECT DISTINCT instance_id FROM {table}").scalars()
            assert set(left) <= {running}


def test_no_ttl_means_kept(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(quick("keep"))
    inst = finish(eng, "keep")
    clock.advance(3650 * DAY)
    assert eng.cleanup_history() == 0
    assert eng.get_instance(inst).state == "completed"


def test_cleanup_in_batches(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.history_cleanup.batch = 3
    eng.deploy(quick("zero", "0"))
    ids = [finish(eng, "zero") for _ in range(8)]
    clock.advance(1)
    assert eng.cleanup_history() == 8
    assert eng.instances(process_key="zero") == []
    assert all(eng.store.instance(i) is None for i in ids)


def test_bad_ttl_values(make_engine: object) -> None:
    with pytest.raises(EngineError, match="history_time_to_live"):
        make_engine(history_time_to_live="P5D")  # type: ignore[operator]
    eng: ProcessEngine = make_engine()  # type: ignore[operator]
    eng.deploy(quick("bad", "soon"))
    finish(eng, "bad")
    with pytest.raises(EngineError, match="historyTimeToLive 'soon'"):
        eng.cleanup_history()


def test_history_cleaner_thread(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(quick("zero", "0"))
    finish(eng, "zero")
    clock.advance(1)
    cleaner = eng.history_cleaner(interval=3600)
    assert cleaner.run_once() == 1
    cleaner.start()
    cleaner.stop(timeout=5)
    with pytest.raises(EngineError, match="positive"):
        eng.history_cleaner(interval=0)


def test_delete_deployment(eng: ProcessEngine) -> None:
    dep = eng.deploy(quick("gone"))
    running = eng.start("gone").id
    ended = finish(eng, "gone")
    with pytest.raises(InvalidOperation, match=f"1 running instance.*{running}"):
        eng.delete_deployment(dep.id)
    assert eng.get_instance(running).state == "active"  # refused: nothing deleted
    eng.cancel(running)
    assert eng.delete_deployment(dep.id) == 0  # ended instances keep their history
    assert eng.history(ended)
    with pytest.raises(NotFound):
        eng.start("gone")
    with pytest.raises(NotFound):
        eng.delete_deployment(dep.id)
    # Deployed again, it is a new deployment.
    again = eng.deploy(quick("gone"))
    assert again.id != dep.id and not again.existing


def test_delete_deployment_cascade(eng: ProcessEngine) -> None:
    old = eng.deploy(quick("casc"))
    running = eng.start("casc").id
    ended = finish(eng, "casc")
    new = eng.deploy(process("casc", user("A"), user("B")))
    survivor = eng.start("casc").id
    assert eng.delete_deployment(old.id, cascade=True) == 2
    for gone in (running, ended):
        with pytest.raises(NotFound):
            eng.get_instance(gone)
    assert eng.tasks(instance_id=running) == []
    assert eng.get_instance(survivor).version == 2
    assert eng.start("casc").version == 2
    assert new.id != old.id
