"""Process tests for ``processes/example_process.bpmn`` (one external task of topic "copy" per
file, in parallel), written only with the Spillway pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.testing import ManualClock, assert_that, complete_external_task
from processes import example_process_handlers as copies

EXAMPLE = Path(__file__).parents[2] / "processes" / "example_process.bpmn"


@pytest.fixture
def example(process_engine: ProcessEngine) -> ProcessEngine:
    copies.register(process_engine)
    process_engine.deploy(EXAMPLE)
    return process_engine


def copy_of(name: str) -> dict[str, object]:
    return {"copy": {"from": name, "to": name.replace("in/", "archive/", 1)}}


def test_every_file_is_copied_then_the_instance_ends(example: ProcessEngine) -> None:
    files = copies.files(3)
    inst = example.start("ExampleProcess", {"files": files})
    assert_that(inst).is_active().is_waiting_exactly_at("Task_Copy")
    assert len(example.external_tasks.list(topic="copy", instance_id=inst.id)) == 3

    for n, name in enumerate(files):
        assert_that(inst).is_waiting_at("Task_Copy").has_not_passed("EndEvent_Copied")
        complete_external_task(example, "copy", copy_of(name), instance=inst)
        assert len(example.external_tasks.list(instance_id=inst.id)) == 2 - n

    assert_that(inst).is_completed().has_passed("Task_Copy", "EndEvent_Copied")
    copied = example.get_instance(inst.id).variables["copies"]
    assert sorted(c["from"] for c in copied) == files


def test_a_completion_reaches_only_its_instance(example: ProcessEngine) -> None:
    first = example.start("ExampleProcess", {"files": copies.files(1)})
    second = example.start("ExampleProcess", {"files": copies.files(1)})
    done = complete_external_task(example, "copy", copy_of("in/file-000.dat"), instance=second)
    assert done.id == second.id
    assert_that(second).is_completed()
    assert_that(first).is_waiting_exactly_at("Task_Copy")
    # What the worker saw: the task's own multi-instance item.
    [task] = example.external_tasks.list(instance_id=first.id)
    assert task.variables["file"] == "in/file-000.dat" and task.worker_id is None


def test_a_failed_copy_is_fetchable_again_after_five_seconds(
    example: ProcessEngine, clock: ManualClock
) -> None:
    inst = example.start("ExampleProcess", {"files": copies.files(1)})
    [task] = example.external_tasks.fetch_and_lock("worker-1", topics=["copy"])
    example.external_tasks.handle_failure(
        task.id, "worker-1", "disk full", retries=2, retry_timeout=5
    )

    with pytest.raises(
        AssertionError, match="due 2030-01-01 09:00:05, retries left 2, last error: disk full"
    ):
        complete_external_task(example, "copy", copy_of("in/file-000.dat"))
    clock.advance(5)
    complete_external_task(example, "copy", copy_of("in/file-000.dat"))
    assert_that(inst).is_completed()


def test_a_crashed_workers_task_is_taken_over_when_its_lock_expires(
    example: ProcessEngine, clock: ManualClock
) -> None:
    inst = example.start("ExampleProcess", {"files": copies.files(1)})
    example.external_tasks.fetch_and_lock("worker-1", topics=["copy"], lock_duration=60)
    with pytest.raises(AssertionError, match="locked by worker-1 until 2030-01-01 09:01:00"):
        complete_external_task(example, "copy", copy_of("in/file-000.dat"))
    clock.advance(60)
    complete_external_task(example, "copy", copy_of("in/file-000.dat"))
    assert_that(inst).is_completed()


def test_copies_failing_for_good_are_an_incident(example: ProcessEngine) -> None:
    inst = example.start("ExampleProcess", {"files": copies.files(2)})
    [task] = example.external_tasks.fetch_and_lock("worker-1", topics=["copy"], max_tasks=1)
    example.external_tasks.handle_failure(task.id, "worker-1", "no such disk", retries=0)
    assert_that(inst).has_incident(at="Task_Copy", message="no such disk")
    assert_that(inst).is_waiting_at("Task_Copy").has_not_passed("EndEvent_Copied")

    [incident] = example.incidents(inst.id)
    example.retry(incident.id)
    complete_external_task(example, "copy", copy_of("in/file-000.dat"), instance=inst)
    complete_external_task(example, "copy", copy_of("in/file-001.dat"), instance=inst)
    assert_that(inst).is_completed().has_no_incident()
