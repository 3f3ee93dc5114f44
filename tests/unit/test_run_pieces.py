"""The pieces a run is made of, each on its own, without a database: the task-tree reads of
``engine.bpmn.instance_state``, the ``Ledger`` (jobs, incidents, external tasks a run books)
and ``engine.runtime.finish`` (the instance row a finished run writes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from behaviors import AsyncOnErrorBehavior, ExternalBehavior
from engine.bpmn import instance_state
from engine.bpmn.scripting import SafeScriptEngine
from engine.core.errors import InvalidVariables
from engine.core.retry import RetryPolicy
from engine.core.values import TaskContext
from engine.deploy.bpmnxml import Source
from engine.deploy.deployment import ProcessModel, compile_sources
from engine.runtime import finish
from engine.runtime.activation import Behavior, Handler
from engine.runtime.codec import InstanceCodec
from engine.runtime.run import Run
from engine.runtime.services import JobContext
from engine.storage.outbox import OutboxRoute
from tests.bpmnbuild import catch_message, process, service, user

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
MESSAGES = '<bpmn:message id="Msg_Paid" name="Paid" />'


class FakeServices:
    """What a run needs, without an engine: a fixed clock, handlers, one behaviour."""

    def __init__(self, policy: RetryPolicy, behavior: Behavior | None = None) -> None:
        self.handlers: dict[str, Handler] = {}
        self.policy = policy
        self.behavior = behavior or AsyncOnErrorBehavior()
        self.script_engine = SafeScriptEngine()

    def now(self) -> datetime:
        return NOW

    def handler_for(self, name: str) -> Handler | None:
        return self.handlers.get(name)

    def behavior_for(self, model: ProcessModel, task_spec: Any) -> Behavior:
        return self.behavior

    def retry_policy_for(self, model: ProcessModel, task_spec: Any) -> RetryPolicy:
        return self.policy

    def outbox_route(self, topic: str) -> OutboxRoute | None:
        return None


def model_of(xml: bytes) -> ProcessModel:
    [model] = compile_sources([Source("test.bpmn", xml)])
    return model


DEFINITION = {"id": "p:1:abc", "version": 1}


def started(
    xml: bytes,
    services: FakeServices,
    variables: Mapping[str, Any] | None = None,
) -> Run:
    run = Run.new(services, model_of(xml), DEFINITION, variables or {}, "BK-1")
    run.begin()
    return run


def failing(ctx: TaskContext) -> None:
    raise ConnectionError("card service down")


# -- instance_state: what the tree says ----------------------------------------------------


def test_waiting_at_variables_and_subscriptions_of_a_parallel_wait() -> None:
    xml = process(
        "p",
        '<bpmn:parallelGateway id="Split" />',
        user("Approve"),
        catch_message("WaitPaid", "Msg_Paid"),
        '<bpmn:parallelGateway id="Join" />',
        flows=[
            ("StartEvent_1", "Split"),
            ("Split", "Approve"),
            ("Split", "WaitPaid"),
            ("Approve", "Join"),
            ("WaitPaid", "Join"),
            ("Join", "EndEvent_1"),
        ],
        definitions=MESSAGES,
    )
    run = started(xml, FakeServices(RetryPolicy()), {"amount": 30})
    tasks = instance_state.open_tasks(run.wf)
    assert instance_state.waiting_at(tasks) == ["Approve", "WaitPaid"]
    assert instance_state.variables(run.wf, tasks) == {"amount": 30}
    [sub] = instance_state.subscriptions(run.wf, tasks, "i-1", "BK-1")
    assert sub["kind"] == "message" and sub["name"] == "Paid"
    assert (sub["activity_id"], sub["instance_id"], sub["business_key"]) == (
        "WaitPaid",
        "i-1",
        "BK-1",
    )


def test_a_completed_workflow_reports_its_end_data_and_waits_nowhere() -> None:
    run = started(process("p"), FakeServices(RetryPolicy()), {"x": 1})
    assert run.wf.completed
    tasks = instance_state.open_tasks(run.wf)
    assert instance_state.waiting_at(tasks) == []
    assert instance_state.variables(run.wf, tasks) == {"x": 1}


# -- the ledger: what a run books -------------------------------------------------------------


def test_a_failed_sync_attempt_books_a_retry_job_due_after_the_policy_delay() -> None:
    services = FakeServices(RetryPolicy(retries=2, initial_delay=10.0, jitter=0.0))
    services.handlers["charge"] = failing
    run = started(process("p", service("Charge", handler="charge")), services)
    [job] = run.write.jobs_insert
    assert job["kind"] == "async-continuation" and job["activity_id"] == "Charge"
    assert job["retries_left"] == 2
    assert job["due_at"] == NOW + timedelta(seconds=10)
    assert "card service down" in job["last_error"]
    assert run.write.incidents_insert == []
    charge = [
        (h["outcome"], h["error"]) for h in run.history.inserts if h["activity_id"] == "Charge"
    ]
    assert charge == [("failed", job["last_error"])]


def test_retries_used_up_in_a_job_open_an_incident_on_that_job() -> None:
    services = FakeServices(RetryPolicy(retries=1, initial_delay=1.0, jitter=0.0))
    services.handlers["charge"] = failing
    first = started(process("p", service("Charge", handler="charge")), services)
    [job] = first.write.jobs_insert
    job = {**job, "attempts": 0, "rev": 1}
    # The job's attempt: the same tree, run as the job executor would.
    again = Run(
        services,
        first.model,
        DEFINITION,
        first.wf,
        None,
        instance_id=first.instance_id,
        business_key="BK-1",
        job=JobContext(job, "owner-1"),
    )
    again.reach(again.task(job["task_id"]), in_job=True, attempt=2)
    [update] = again.write.jobs_update
    assert (update["id"], update["attempts"], update["retries_left"]) == (job["id"], 1, 0)
    [incident] = again.write.incidents_insert
    assert (incident["job_id"], incident["activity_id"], incident["kind"]) == (
        job["id"],
        "Charge",
        "failed-job",
    )


def test_reconciling_drops_a_booked_job_whose_task_no_longer_waits_for_it() -> None:
    services = FakeServices(RetryPolicy(retries=3, jitter=0.0))
    services.handlers["charge"] = failing
    run = started(process("p", service("Charge", handler="charge")), services)
    [job] = run.write.jobs_insert
    task = run.task(job["task_id"])
    assert task is not None
    task.cancel()  # as an interrupting boundary event would
    run.ledger.reconcile_jobs()
    assert run.write.jobs_insert == [] and run.ledger.job_keys == {}


def test_an_external_task_gets_its_row_keyed_by_its_history_row() -> None:
    xml = process("p", service("Copy", extra='camunda:type="external" camunda:topic="copy"'))
    run = started(xml, FakeServices(RetryPolicy(), ExternalBehavior()))
    [row] = run.write.external_insert
    assert (row["topic"], row["activity_id"], row["business_key"]) == ("copy", "Copy", "BK-1")
    assert run.ledger.external_keys == {row["task_id"]: row["id"]}
    assert row["id"] in {h["id"] for h in run.history.inserts}


# -- finish: what a finished run writes -------------------------------------------------------


def test_a_new_instance_is_written_at_revision_one_and_snapshot_copies_it() -> None:
    run = started(process("p", user("Approve")), FakeServices(RetryPolicy()), {"a": [1]})
    write = finish.instance_write(run, InstanceCodec())
    row = write.instance
    assert (row["rev"], write.expected_rev, row["state"]) == (1, None, "active")
    assert row["created_at"] == NOW and row["ended_at"] is None
    assert row["waiting_at"] == ["Approve"]
    inst = finish.snapshot(run)
    assert (inst.id, inst.business_key, inst.variables) == (run.instance_id, "BK-1", {"a": [1]})
    inst.variables["a"].append(2)
    assert row["variables"] == {"a": [1]}


def test_a_loaded_instance_is_written_at_the_next_revision_and_expects_its_own() -> None:
    run = started(process("p", user("Approve")), FakeServices(RetryPolicy()))
    stored = {"rev": 4, "created_at": NOW - timedelta(days=1), "open_activities": {}}
    again = Run(
        run.services,
        run.model,
        DEFINITION,
        run.wf,
        stored,
        instance_id=run.instance_id,
        business_key="BK-1",
    )
    again.complete_task("Approve", {"ok": True})
    write = finish.instance_write(again, InstanceCodec())
    assert (write.instance["rev"], write.expected_rev) == (5, 4)
    assert write.instance["state"] == "completed" and write.instance["ended_at"] == NOW
    assert finish.snapshot(again).created_at == stored["created_at"]


@pytest.mark.parametrize(
    ("had_incident", "opens_one", "expected"),
    [(False, False, "active"), (True, False, "incident"), (False, True, "incident")],
)
def test_state_counts_incidents_from_before_and_from_this_run(
    had_incident: bool, opens_one: bool, expected: str
) -> None:
    services = FakeServices(RetryPolicy(retries=0 if opens_one else 3, jitter=0.0))
    services.handlers["charge"] = failing
    run = started(process("p", service("Charge", handler="charge")), services)
    assert finish.state(run, had_incident) == expected


def test_variables_that_cannot_be_stored_fail_the_finish_naming_the_instance() -> None:
    run = started(process("p", user("Approve")), FakeServices(RetryPolicy()))
    [task] = instance_state.open_tasks(run.wf)
    task.data["when"] = NOW  # not JSON
    with pytest.raises(InvalidVariables, match=f"instance {run.instance_id}"):
        finish.instance_write(run, InstanceCodec())
