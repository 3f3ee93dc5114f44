"""Timer events as jobs: intermediate, boundary, event-based gateway, event subprocess and
timer start events, all driven by the engine's clock (no sleeping, no wall time)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from engine import ProcessEngine, RetryPolicy
from engine.core.errors import DeploymentError, EngineError
from engine.testing import ManualClock
from tests.bpmnbuild import process, service, user
from tests.conftest import EngineFactory

HOUR = 3600


def timer(kind: str, text: str) -> str:
    return (
        f"<bpmn:timerEventDefinition><bpmn:{kind}>{text}</bpmn:{kind}></bpmn:timerEventDefinition>"
    )


def catch_timer(event_id: str, kind: str, text: str) -> str:
    return (
        f'<bpmn:intermediateCatchEvent id="{event_id}">{timer(kind, text)}'
        "</bpmn:intermediateCatchEvent>"
    )


def boundary(event_id: str, attached: str, kind: str, text: str, interrupting: bool = True) -> str:
    cancel = "" if interrupting else ' cancelActivity="false"'
    return (
        f'<bpmn:boundaryEvent id="{event_id}" attachedToRef="{attached}"{cancel}>'
        f"{timer(kind, text)}</bpmn:boundaryEvent>"
    )


def passed(eng: ProcessEngine, instance_id: str) -> list[str]:
    return [h.activity_id for h in eng.history(instance_id) if h.outcome == "completed"]


def job_kinds(eng: ProcessEngine, instance_id: str | None = None) -> list[tuple[str, str]]:
    return [(j.kind, j.activity_id) for j in eng.jobs(instance_id)]


# -- intermediate catch events -----------------------------------------------------------


def test_duration_timer_waits_for_its_job(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.register_handler("after", lambda ctx: {"after": True})
    eng.deploy(process("p", catch_timer("Wait", "timeDuration", "PT1H"), service("A", "after")))
    inst = eng.start("p")
    assert inst.state == "active" and inst.waiting_at == ["Wait"]
    [job] = eng.jobs(inst.id)
    assert (job.kind, job.activity_id) == ("timer", "Wait")
    assert job.due_at == clock.now() + timedelta(hours=1)
    assert eng.run_jobs() == 0  # not due yet
    clock.advance(HOUR - 1)
    assert eng.run_jobs() == 0
    clock.advance(1)
    assert eng.run_jobs() == 1
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["after"] is True
    assert passed(eng, inst.id) == ["StartEvent_1", "Wait", "A", "EndEvent_1"]
    assert eng.jobs() == []


def test_date_timer_in_the_past_fires_at_once(eng: ProcessEngine) -> None:
    eng.deploy(process("p", catch_timer("Wait", "timeDate", "2020-01-01T00:00:00Z")))
    inst = eng.start("p")
    [job] = eng.jobs(inst.id)
    assert job.due_at == datetime(2020, 1, 1, tzinfo=UTC)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).state == "completed"


def test_date_timer_in_the_future(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(process("p", catch_timer("Wait", "timeDate", "2030-01-02T10:00:00Z")))
    inst = eng.start("p")
    clock.set(datetime(2030, 1, 2, 9, 59, 59, tzinfo=UTC))
    assert eng.run_jobs() == 0
    clock.advance(1)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).state == "completed"


def test_timer_expression_reads_variables(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(process("p", catch_timer("Wait", "timeDuration", "${reminder}")))
    inst = eng.start("p", variables={"reminder": "P3D"})
    [job] = eng.jobs(inst.id)
    assert job.due_at == clock.now() + timedelta(days=3)


def test_timer_expression_with_a_bad_value_fails_the_call_and_stores_nothing(
    eng: ProcessEngine,
) -> None:
    eng.deploy(process("p", catch_timer("Wait", "timeDuration", "${reminder}")))
    with pytest.raises(EngineError, match="timer 'Wait'.*3 days"):
        eng.start("p", variables={"reminder": "3 days"})
    with pytest.raises(EngineError, match="timer 'Wait'"):
        eng.start("p", variables={"reminder": 3})
    assert eng.instances() == [] and eng.jobs() == []


def test_camunda_cycle_on_a_catch_event_fires_once(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(process("p", catch_timer("Wait", "timeCycle", "R3/PT10M")))
    inst = eng.start("p")
    clock.advance(600)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).state == "completed" and eng.jobs() == []


@pytest.mark.parametrize(
    ("kind", "text", "reason"),
    [
        ("timeDuration", "5 minutes", "invalid timeDuration"),
        ("timeDate", "tomorrow", "invalid timeDate"),
        ("timeCycle", "R3/PT0S", "longer than zero"),
        ("timeDuration", "${a +}", "timer 'Wait'"),
    ],
)
def test_invalid_timer_is_refused_at_deploy_naming_the_element(
    eng: ProcessEngine, kind: str, text: str, reason: str
) -> None:
    with pytest.raises(DeploymentError, match=reason) as err:
        eng.deploy(process("p", catch_timer("Wait", kind, text)))
    assert "Wait" in str(err.value)


# -- boundary timers ---------------------------------------------------------------------


def user_with_timer(interrupting: bool, kind: str = "timeDuration", text: str = "P3D") -> bytes:
    return process(
        "p",
        user("Review"),
        boundary("Overdue", "Review", kind, text, interrupting),
        user("Escalate"),
        flows=[
            ("StartEvent_1", "Review"),
            ("Review", "EndEvent_1"),
            ("Overdue", "Escalate"),
            ("Escalate", "EndEvent_1"),
        ],
    )


def test_interrupting_boundary_timer_takes_its_path(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(user_with_timer(interrupting=True))
    inst = eng.start("p")
    assert inst.waiting_at == ["Review"]  # a boundary event is not where the token waits
    assert job_kinds(eng, inst.id) == [("timer", "Overdue")]
    clock.advance(timedelta(days=3))
    assert eng.run_jobs() == 1
    moved = eng.get_instance(inst.id)
    assert moved.waiting_at == ["Escalate"]
    outcomes = {(h.activity_id, h.outcome) for h in eng.history(inst.id)}
    assert ("Review", "cancelled") in outcomes and ("Overdue", "completed") in outcomes
    with pytest.raises(EngineError):
        eng.complete_task(inst.id, "Review")


def test_completing_the_activity_cancels_its_timer_job(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(user_with_timer(interrupting=True))
    inst = eng.start("p")
    eng.complete_task(inst.id, "Review")
    assert eng.get_instance(inst.id).state == "completed"
    assert eng.jobs() == []
    clock.advance(timedelta(days=4))
    assert eng.run_jobs() == 0
    assert "Overdue" not in {h.activity_id for h in eng.history(inst.id)}


def test_non_interrupting_cycle_fires_each_repetition_and_keeps_the_activity(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(user_with_timer(interrupting=False, kind="timeCycle", text="R3/PT10M"))
    inst = eng.start("p")
    dues = []
    for _ in range(3):
        [job] = eng.jobs(inst.id)
        dues.append(job.due_at)
        clock.advance(600)
        assert eng.run_jobs() == 1
    start = dues[0] - timedelta(minutes=10)
    assert dues == [start + timedelta(minutes=10 * k) for k in (1, 2, 3)]
    assert eng.jobs(inst.id) == []  # three repetitions, then the timer is spent
    clock.advance(HOUR)
    assert eng.run_jobs() == 0
    history = eng.history(inst.id)
    assert [h.activity_id for h in history].count("Overdue") == 3
    assert [h.activity_id for h in history if h.ended_at is None].count("Escalate") == 3
    eng.complete_task(inst.id, "Review")
    for _ in range(3):  # the escalation paths outlive the activity
        eng.complete_task(inst.id, "Escalate")
    assert eng.get_instance(inst.id).state == "completed"


def test_non_interrupting_duration_fires_once(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(user_with_timer(interrupting=False, text="PT1H"))
    inst = eng.start("p")
    clock.advance(HOUR)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).waiting_at == ["Escalate", "Review"]
    assert eng.jobs(inst.id) == []


def failing_with_timer(eng: ProcessEngine, text: str) -> None:
    def down(ctx: object) -> None:
        raise ConnectionError("payment service down")

    eng.register_handler("charge", down)
    eng.deploy(
        process(
            "p",
            service("Charge", "charge"),
            boundary("GiveUp", "Charge", "timeDuration", text),
            user("CallCustomer"),
            flows=[
                ("StartEvent_1", "Charge"),
                ("Charge", "EndEvent_1"),
                ("GiveUp", "CallCustomer"),
                ("CallCustomer", "EndEvent_1"),
            ],
        )
    )


def test_boundary_timer_beats_a_pending_retry(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    policy = RetryPolicy(retries=3, initial_delay=HOUR, max_delay=4 * HOUR, jitter=0)
    eng = make_engine(retry_policy=policy)
    failing_with_timer(eng, "PT30M")
    inst = eng.start("p")
    assert inst.waiting_at == ["Charge"]
    assert sorted(job_kinds(eng, inst.id)) == [
        ("async-continuation", "Charge"),
        ("timer", "GiveUp"),
    ]
    clock.advance(1800)  # the timer is due, the retry (one hour) is not
    assert eng.run_jobs() == 1
    moved = eng.get_instance(inst.id)
    assert moved.waiting_at == ["CallCustomer"] and moved.state == "active"
    assert eng.jobs(inst.id) == []  # the retry job was cancelled with its task
    clock.advance(10 * HOUR)
    assert eng.run_jobs() == 0


def test_boundary_timer_resolves_the_incident_of_the_task_it_cancels(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=RetryPolicy(retries=0))
    failing_with_timer(eng, "P1D")
    inst = eng.start("p")
    assert inst.state == "incident" and len(eng.incidents(inst.id)) == 1
    clock.advance(timedelta(days=1))
    assert eng.run_jobs() == 1
    moved = eng.get_instance(inst.id)
    assert moved.state == "active" and moved.waiting_at == ["CallCustomer"]
    assert eng.incidents(inst.id) == []
    assert eng.incidents(inst.id, open_only=False)[0].resolved_at == clock.now()


def test_retry_that_succeeds_first_cancels_the_boundary_timer(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=RetryPolicy(retries=3, initial_delay=60, jitter=0))
    calls = []

    def flaky(ctx: object) -> dict[str, bool]:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("slow")
        return {"charged": True}

    eng.register_handler("charge", flaky)
    eng.deploy(
        process(
            "p",
            service("Charge", "charge"),
            boundary("GiveUp", "Charge", "timeDuration", "PT30M"),
            flows=[("StartEvent_1", "Charge"), ("Charge", "EndEvent_1"), ("GiveUp", "EndEvent_1")],
        )
    )
    inst = eng.start("p")
    clock.advance(60)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).state == "completed"
    assert eng.jobs() == []


# -- event-based gateway -----------------------------------------------------------------


def race() -> bytes:
    return process(
        "p",
        '<bpmn:eventBasedGateway id="Race" />',
        catch_timer("Timeout", "timeDuration", "PT1H"),
        '<bpmn:intermediateCatchEvent id="Paid"><bpmn:messageEventDefinition messageRef="M" />'
        "</bpmn:intermediateCatchEvent>",
        user("Remind"),
        flows=[
            ("StartEvent_1", "Race"),
            ("Race", "Timeout"),
            ("Race", "Paid"),
            ("Timeout", "Remind"),
            ("Remind", "EndEvent_1"),
            ("Paid", "EndEvent_1"),
        ],
        definitions='<bpmn:message id="M" name="payment" />',
    )


def test_event_gateway_timer_wins(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(race())
    inst = eng.start("p")
    assert inst.waiting_at == ["Race"]
    clock.advance(HOUR)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).waiting_at == ["Remind"]
    with pytest.raises(EngineError, match="payment"):
        eng.correlate_message("payment")


def test_event_gateway_message_wins_and_cancels_the_timer(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(race())
    inst = eng.start("p")
    eng.correlate_message("payment", variables={"paid": 10})
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["paid"] == 10
    assert eng.jobs() == []
    assert "Paid" in passed(eng, inst.id) and "Timeout" not in passed(eng, inst.id)


# -- event subprocesses ------------------------------------------------------------------


def with_timer_event_subprocess(interrupting: bool) -> bytes:
    flag = "true" if interrupting else "false"
    return process(
        "p",
        user("Work"),
        extra=(
            '<bpmn:subProcess id="Deadline" triggeredByEvent="true">'
            f'<bpmn:startEvent id="DeadlineReached" isInterrupting="{flag}">'
            f"{timer('timeDuration', 'PT2H')}</bpmn:startEvent>"
            '<bpmn:userTask id="Escalate" /><bpmn:endEvent id="DeadlineEnd" />'
            '<bpmn:sequenceFlow id="d1" sourceRef="DeadlineReached" targetRef="Escalate" />'
            '<bpmn:sequenceFlow id="d2" sourceRef="Escalate" targetRef="DeadlineEnd" />'
            "</bpmn:subProcess>"
        ),
    )


def test_interrupting_timer_event_subprocess_cancels_the_scope(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(with_timer_event_subprocess(interrupting=True))
    inst = eng.start("p")
    assert inst.waiting_at == ["Work"]
    assert job_kinds(eng, inst.id) == [("timer", "DeadlineReached")]
    clock.advance(2 * HOUR)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).waiting_at == ["Escalate"]
    assert ("Work", "cancelled") in {(h.activity_id, h.outcome) for h in eng.history(inst.id)}
    eng.complete_task(inst.id, "Escalate")
    assert eng.get_instance(inst.id).state == "completed"


def test_non_interrupting_timer_event_subprocess_runs_beside(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(with_timer_event_subprocess(interrupting=False))
    inst = eng.start("p")
    clock.advance(2 * HOUR)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).waiting_at == ["Escalate", "Work"]
    eng.complete_task(inst.id, "Escalate")
    eng.complete_task(inst.id, "Work")
    assert eng.get_instance(inst.id).state == "completed"


def test_event_subprocess_timer_is_cancelled_when_the_process_ends(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(with_timer_event_subprocess(interrupting=True))
    inst = eng.start("p")
    eng.complete_task(inst.id, "Work")
    assert eng.get_instance(inst.id).state == "completed"
    assert eng.jobs() == []


# -- timer start events ------------------------------------------------------------------


def timer_started(text: str = "R2/PT1H", pid: str = "nightly") -> bytes:
    return process(
        pid,
        user("Report"),
        start=f'<bpmn:startEvent id="Tick">{timer("timeCycle", text)}</bpmn:startEvent>',
    )


def test_timer_start_event_starts_instances_on_its_cycle(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(timer_started("R2/PT1H"))
    [job] = eng.jobs()
    assert job.kind == "timer-start" and job.instance_id is None and job.definition_id
    assert job.due_at == clock.now() + timedelta(hours=1)
    clock.advance(HOUR)
    assert eng.run_jobs() == 1
    [first] = eng.instances("nightly")
    assert first.waiting_at == ["Report"]
    assert passed(eng, first.id) == ["Tick"]
    clock.advance(HOUR)
    assert eng.run_jobs() == 1
    assert len(eng.instances("nightly")) == 2
    assert eng.jobs() == []  # R2: two firings
    clock.advance(HOUR)
    assert eng.run_jobs() == 0


def test_a_new_version_replaces_the_timer_start_job(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(timer_started("R/PT1H"))
    eng.deploy(timer_started("R/PT2H"))
    [job] = eng.jobs()
    assert job.due_at == clock.now() + timedelta(hours=2)
    assert job.definition_id is not None and ":2:" in job.definition_id
    eng.deploy(timer_started("R/PT2H"))  # unchanged content: the same job stays
    assert [j.id for j in eng.jobs()] == [job.id]


def test_unbounded_cycle_keeps_its_job(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.deploy(timer_started("R/PT1H"))
    for hours in range(1, 4):
        clock.advance(HOUR)
        assert eng.run_jobs() == 1
        [job] = eng.jobs()
        assert job.due_at == clock.now() + timedelta(hours=1)
        assert len(eng.instances("nightly")) == hours


def test_start_of_a_timer_started_process_runs_at_once(eng: ProcessEngine) -> None:
    eng.deploy(timer_started())
    inst = eng.start("nightly", variables={"manual": True})
    assert inst.waiting_at == ["Report"] and inst.variables["manual"] is True


def test_cron_timer_start(eng: ProcessEngine, clock: ManualClock) -> None:
    clock.set(datetime(2030, 1, 3, 8, 0, tzinfo=UTC))
    eng.deploy(timer_started("0 0 9 * * ?"))  # every day at 09:00
    [job] = eng.jobs()
    assert job.due_at == datetime(2030, 1, 3, 9, 0, tzinfo=UTC)
    clock.set(datetime(2030, 1, 3, 9, 0, tzinfo=UTC))
    assert eng.run_jobs() == 1
    assert eng.jobs()[0].due_at == datetime(2030, 1, 4, 9, 0, tzinfo=UTC)


# -- timers in loops, subprocesses, executors ------------------------------------------------


def test_timer_inside_an_embedded_subprocess(eng: ProcessEngine, clock: ManualClock) -> None:
    sub = (
        '<bpmn:subProcess id="Sub"><bpmn:startEvent id="SubStart" />'
        f"{catch_timer('SubWait', 'timeDuration', 'PT5M')}"
        '<bpmn:endEvent id="SubEnd" />'
        '<bpmn:sequenceFlow id="s1" sourceRef="SubStart" targetRef="SubWait" />'
        '<bpmn:sequenceFlow id="s2" sourceRef="SubWait" targetRef="SubEnd" />'
        "</bpmn:subProcess>"
    )
    eng.deploy(process("p", sub))
    inst = eng.start("p")
    assert inst.waiting_at == ["SubWait"]
    clock.advance(300)
    assert eng.run_jobs() == 1
    assert eng.get_instance(inst.id).state == "completed"


def test_timer_in_a_loop_gets_a_new_job_each_pass(eng: ProcessEngine, clock: ManualClock) -> None:
    eng.register_handler("count", lambda ctx: {"n": ctx.variables.get("n", 0) + 1})
    eng.deploy(
        process(
            "p",
            catch_timer("Wait", "timeDuration", "PT1M"),
            service("Count", "count"),
            '<bpmn:exclusiveGateway id="More" default="Flow_4" />',
            flows=[
                ("StartEvent_1", "Wait"),
                ("Wait", "Count"),
                ("Count", "More"),
                ("More", "Wait", "${n < 3}"),
                ("More", "EndEvent_1"),
            ],
        )
    )
    inst = eng.start("p")
    for _ in range(3):
        assert len(eng.jobs(inst.id)) == 1
        clock.advance(60)
        assert eng.run_jobs() == 1
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["n"] == 3


def test_executor_of_another_node_fires_the_timer(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    a, b = make_engine(), make_engine()
    a.deploy(user_with_timer(interrupting=True, text="PT1M"))
    inst = a.start("p")
    clock.advance(60)
    ex = b.job_executor(workers=2)
    ex.start()
    try:
        deadline = time.monotonic() + 10
        while a.get_instance(inst.id).waiting_at != ["Escalate"] and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        ex.stop()
    assert a.get_instance(inst.id).waiting_at == ["Escalate"]


def test_a_finished_side_path_keeps_its_variables_visible(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.register_handler("remind", lambda ctx: {"reminded": True})
    eng.deploy(
        process(
            "p",
            user("Review"),
            boundary("Nudge", "Review", "timeDuration", "PT1H", interrupting=False),
            service("Remind", "remind"),
            '<bpmn:endEvent id="Reminded" />',
            flows=[
                ("StartEvent_1", "Review"),
                ("Review", "EndEvent_1"),
                ("Nudge", "Remind"),
                ("Remind", "Reminded"),
            ],
        )
    )
    inst = eng.start("p")
    clock.advance(HOUR)
    eng.run_jobs()
    waiting = eng.get_instance(inst.id)
    assert waiting.waiting_at == ["Review"] and waiting.variables["reminded"] is True
    eng.complete_task(inst.id, "Review", {"ok": True})
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["ok"] is True


def test_timer_start_beside_a_none_start_takes_its_own_path(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(
        process(
            "two",
            '<bpmn:startEvent id="Manual" />',
            f'<bpmn:startEvent id="Nightly">{timer("timeDuration", "PT1H")}</bpmn:startEvent>',
            user("ByHand"),
            user("ByTimer"),
            start="",
            flows=[
                ("Manual", "ByHand"),
                ("Nightly", "ByTimer"),
                ("ByHand", "EndEvent_1"),
                ("ByTimer", "EndEvent_1"),
            ],
        )
    )
    assert eng.start("two").waiting_at == ["ByHand"]
    clock.advance(HOUR)
    assert eng.run_jobs() == 1
    [timed] = [i for i in eng.instances("two") if i.waiting_at == ["ByTimer"]]
    assert passed(eng, timed.id) == ["Nightly"]


# -- timers drawn without a time -----------------------------------------------------------


def test_a_timer_without_a_time_never_falls_due_and_runs_when_executed(
    eng: ProcessEngine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    eng.register_handler("after", lambda ctx: {"after": True})
    drawn = (
        '<bpmn:intermediateCatchEvent id="Later"><bpmn:timerEventDefinition />'
        "</bpmn:intermediateCatchEvent>"
    )
    with caplog.at_level("WARNING", logger="spillway.timers"):
        eng.deploy(process("p", drawn, service("A", "after")))
    assert "timer 'Later' has no timeDate, timeDuration or timeCycle" in caplog.text
    inst = eng.start("p")
    assert inst.waiting_at == ["Later"]
    [job] = eng.jobs(inst.id)
    assert (job.kind, job.activity_id) == ("timer", "Later")
    assert job.due_at == datetime(9999, 1, 1, tzinfo=UTC)
    clock.advance(timedelta(days=365 * 100))
    assert eng.run_jobs() == 0
    assert eng.get_instance(inst.id).waiting_at == ["Later"]
    eng.execute_job(job.id)  # an operator (or a test) fires it
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["after"] is True


def test_an_empty_time_element_is_a_timer_without_a_time(eng: ProcessEngine) -> None:
    eng.register_handler("work", lambda ctx: {"worked": True})
    eng.deploy(
        process(
            "p",
            user("Review"),
            service("A", "work"),
            extra=boundary("Late", "Review", "timeDate", ""),
        )
    )
    inst = eng.start("p")
    [job] = eng.jobs(inst.id)
    assert job.activity_id == "Late" and job.due_at.year == 9999
    eng.complete_task(inst.id, "Review")
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["worked"] is True
    assert eng.jobs(inst.id) == []
