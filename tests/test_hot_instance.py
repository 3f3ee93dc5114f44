"""Reports on one hot instance from several nodes wait for each other; none races (issue 19).

Two engines on one database stand for two nodes; each completes the parallel external tasks of
one instance from several threads. A report reads its instance under a row lock
(``Store.locked_instance``) and commits in the same transaction, so no completion loses an
optimistic-locking race: ``conflicts_retried`` stays 0 on every node, every ``complete()``
returns True and the joins fire once.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest

from engine import ProcessEngine
from tests.conftest import EngineFactory

EXAMPLE = Path(__file__).parent.parent / "processes" / "example_process.bpmn"
TASKS = 50
THREADS_PER_NODE = 4


def _drain(node: ProcessEngine, worker: str, results: list[object]) -> None:
    while True:
        tasks = node.external_tasks.fetch_and_lock(worker, topics=["copy"], max_tasks=2)
        if not tasks:
            return
        for task in tasks:
            try:
                results.append(node.external_tasks.complete(task.id, worker, {"copy": task.id}))
            except Exception as exc:  # every outcome is recorded, the assertion names it
                results.append(exc)


def test_parallel_completions_from_two_nodes_never_conflict(make_engine: EngineFactory) -> None:
    nodes = [make_engine(), make_engine()]
    nodes[0].deploy(EXAMPLE)
    files = [f"f{n}" for n in range(TASKS)]
    inst = nodes[0].start("ExampleProcess", variables={"files": files})
    results: list[object] = []
    barrier = threading.Barrier(len(nodes) * THREADS_PER_NODE)

    def work(node: ProcessEngine, worker: str) -> None:
        barrier.wait()
        _drain(node, worker, results)

    threads = [
        threading.Thread(target=work, args=(node, f"w{n}-{i}"))
        for n, node in enumerate(nodes)
        for i in range(THREADS_PER_NODE)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [r for r in results if r is not True] == []
    assert len(results) == TASKS
    assert sum(node.stats["conflicts_retried"] for node in nodes) == 0
    done = nodes[1].get_instance(inst.id)
    assert done.state == "completed"
    assert len(done.variables["copies"]) == TASKS
    ends = [h for h in nodes[1].history(inst.id) if h.activity_id == "EndEvent_Copied"]
    assert len(ends) == 1


def test_a_report_waits_for_the_instance_lock(make_engine: EngineFactory) -> None:
    """While another transaction holds the instance, a completion waits, then applies."""
    holder, node = make_engine(), make_engine()
    node.deploy(EXAMPLE)
    inst = node.start("ExampleProcess", variables={"files": ["a", "b"]})
    task = node.external_tasks.fetch_and_lock("w", topics=["copy"], max_tasks=1)[0]
    outcome: list[object] = []
    with holder.store.locked_instance(inst.id) as row:
        assert row is not None and row["id"] == inst.id
        reporter = threading.Thread(
            target=lambda: outcome.append(node.external_tasks.complete(task.id, "w", {"copy": 1}))
        )
        reporter.start()
        reporter.join(0.5)
        assert reporter.is_alive(), "the completion did not wait for the instance lock"
    reporter.join(30)
    assert outcome == [True]
    assert node.stats["conflicts_retried"] == 0
    assert len(node.external_tasks.list(instance_id=inst.id)) == 1


@pytest.mark.parametrize("fail", [True, False])
def test_locked_block_commits_all_or_nothing(eng: ProcessEngine, fail: bool) -> None:
    eng.deploy(EXAMPLE)
    inst = eng.start("ExampleProcess", variables={"files": ["a"]})
    task = eng.external_tasks.fetch_and_lock("w", topics=["copy"], max_tasks=1)[0]
    seen: list[str] = []
    with (
        pytest.raises(RuntimeError) if fail else contextlib.nullcontext(),
        eng.store.locked_instance(inst.id),
    ):
        eng.store.on_commit(lambda: seen.append("committed"))
        assert eng.store.unlock_external_task(task.id)
        if fail:
            raise RuntimeError("boom")
    assert seen == ([] if fail else ["committed"])
    row = eng.store.external_task(task.id)
    assert row is not None
    assert (row["lock_owner"] is None) is (not fail)
