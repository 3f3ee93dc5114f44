"""Every operator verb is one transaction, optimistic on the instance row: two engines on one
database racing verbs against commands and running jobs never both win."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from engine import EngineError, NotFound, ProcessEngine, TaskContext
from tests.bpmnbuild import process, service, user


def race(*calls: Callable[[], object]) -> list[object]:
    """Run the calls at once; their results (or the exception each raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = calls[n]()
        except EngineError as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    return results


def test_cancel_and_complete_never_both_win(make_engine: Callable[..., ProcessEngine]) -> None:
    first, second = make_engine(), make_engine()
    first.deploy(process("one", user("A")))
    for _ in range(6):
        iid = first.start("one").id
        cancelled, completed = race(
            lambda iid=iid: first.cancel(iid, reason="race"),  # type: ignore[misc]
            lambda iid=iid: second.complete_task(iid, "A"),  # type: ignore[misc]
        )
        inst = first.get_instance(iid)
        final = first.get_instance(inst.id)
        if isinstance(cancelled, EngineError):
            assert isinstance(cancelled, NotFound)
            assert final.state == "completed" and not isinstance(completed, EngineError)
        else:
            assert isinstance(completed, NotFound), completed
            assert final.state == "terminated"
        outcomes = [h.outcome for h in first.history(inst.id) if h.activity_id == "A"]
        assert outcomes in (["completed"], ["cancelled"])


def test_claims_race_one_wins(make_engine: Callable[..., ProcessEngine]) -> None:
    first, second = make_engine(), make_engine()
    first.deploy(process("one", user("A")))
    inst = first.start("one")
    [task] = first.tasks(instance_id=inst.id)
    results = race(lambda: first.claim(task.id, "mary"), lambda: second.claim(task.id, "pete"))
    winners = [r for r in results if not isinstance(r, EngineError)]
    assert len(winners) == 1
    assert first.tasks(instance_id=inst.id)[0].assignee == winners[0].assignee  # type: ignore[attr-defined]


def _blocking_job(
    eng: ProcessEngine, other: ProcessEngine
) -> tuple[threading.Event, threading.Event, list[str]]:
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(ctx: TaskContext) -> dict[str, bool]:
        calls.append(ctx.instance_id)
        entered.set()
        release.wait(10)
        return {"done": True}

    for node in (eng, other):
        node.register_handler("slow", slow)
    eng.deploy(
        process("job", service("Slow", "slow", extra='camunda:asyncBefore="true"'), user("After"))
    )
    return entered, release, calls


def test_cancel_while_a_job_runs(make_engine: Callable[..., ProcessEngine]) -> None:
    worker, operator = make_engine(), make_engine()
    entered, release, _ = _blocking_job(worker, operator)
    inst = worker.start("job")
    runner = threading.Thread(target=worker.run_jobs)
    runner.start()
    assert entered.wait(10)
    assert operator.cancel(inst.id, reason="stop it").state == "terminated"
    release.set()
    runner.join(30)
    final = operator.get_instance(inst.id)
    assert final.state == "terminated" and "done" not in final.variables
    assert operator.jobs(inst.id) == [] and operator.tasks(instance_id=inst.id) == []
    assert not [
        h for h in operator.history(inst.id) if h.activity_id == "Slow" and h.outcome == "completed"
    ]


def test_suspend_while_a_job_runs_defers_it(make_engine: Callable[..., ProcessEngine]) -> None:
    worker, operator = make_engine(), make_engine()
    entered, release, calls = _blocking_job(worker, operator)
    inst = worker.start("job")
    runner = threading.Thread(target=worker.run_jobs)
    runner.start()
    assert entered.wait(10)
    operator.suspend(inst.id)
    release.set()
    runner.join(30)
    assert operator.get_instance(inst.id).waiting_at == ["Slow"]  # the job's result lost the race
    assert [j.activity_id for j in operator.jobs(inst.id)] == ["Slow"]
    assert worker.run_jobs() == 0  # suspended: not acquired
    operator.activate(inst.id)
    assert worker.run_jobs() == 1
    assert operator.get_instance(inst.id).waiting_at == ["After"]
    assert calls == [inst.id, inst.id]  # at least once: it ran again after activate


@pytest.mark.parametrize("verb", ["set_variables", "modify"])
def test_verbs_racing_complete_task(make_engine: Callable[..., ProcessEngine], verb: str) -> None:
    first, second = make_engine(), make_engine()
    first.deploy(process("two", user("A"), user("B")))
    inst = first.start("two")
    if verb == "set_variables":
        op: Callable[[], object] = lambda: first.set_variables(inst.id, {"x": 1})  # noqa: E731
    else:
        op = lambda: first.modify(inst.id, start_before=["B"], cancel=["A"])  # noqa: E731
    results = race(op, lambda: second.complete_task(inst.id, "A"))
    final = first.get_instance(inst.id)
    # Serialised: whichever came second saw the other's result.
    if verb == "set_variables":
        assert not any(isinstance(r, EngineError) for r in results)
        assert final.variables.get("x") == 1 and final.waiting_at == ["B"]
    else:
        assert final.waiting_at == ["B"]
        assert sum(isinstance(r, EngineError) for r in results) == 1
