"""``engine.testing.assert_that``: each check passing and failing, fresh reads, the failure
message, and how the engine is found."""

from __future__ import annotations

import re

import pytest

from engine import BpmnError, ProcessEngine
from engine.testing import ManualClock, assert_that, fails_times, use_engine
from tests.bpmnbuild import process, service, user

PARALLEL = process(
    "par",
    service("A", handler="a"),
    '<bpmn:parallelGateway id="Split" />',
    user("U1"),
    user("U2"),
    '<bpmn:parallelGateway id="Join" />',
    flows=[
        ("StartEvent_1", "A"),
        ("A", "Split"),
        ("Split", "U1"),
        ("Split", "U2"),
        ("U1", "Join"),
        ("U2", "Join"),
        ("Join", "EndEvent_1"),
    ],
)

LOOP = process(
    "loop",
    service("A", handler="a"),
    user("U"),
    '<bpmn:exclusiveGateway id="Again" />',
    flows=[
        ("StartEvent_1", "A"),
        ("A", "U"),
        ("U", "Again"),
        ("Again", "A", "${again}"),
        ("Again", "EndEvent_1", "${!again}"),
    ],
)

FAILING = process("failing", service("A", handler="a"), user("U"))


@pytest.fixture
def par(process_engine: ProcessEngine) -> ProcessEngine:
    process_engine.register_handler("a", lambda ctx: {"a": 1, "items": ["x", "y"]})
    process_engine.deploy(PARALLEL)
    return process_engine


def failure(excinfo: pytest.ExceptionInfo[AssertionError]) -> str:
    return str(excinfo.value)


def test_waiting_at_each_or_exactly(par: ProcessEngine) -> None:
    inst = par.start("par")
    assert_that(inst).is_active().is_waiting_at("U1").is_waiting_at("U2", "U1")
    assert_that(inst).is_waiting_exactly_at("U2", "U1").is_not_waiting_at("A")

    with pytest.raises(AssertionError) as excinfo:
        assert_that(inst).is_waiting_at("U1", "Review")
    assert failure(excinfo).startswith(
        f"assert_that('{inst.id}').is_waiting_at('U1', 'Review'): it does not wait at "
        "['Review']; it waits at ['U1', 'U2']"
    )
    with pytest.raises(AssertionError, match=r"is_waiting_exactly_at\('U1'\): it waits at"):
        assert_that(inst).is_waiting_exactly_at("U1")
    with pytest.raises(AssertionError, match=r"it waits at \['U2'\]"):
        assert_that(inst).is_not_waiting_at("U2")
    with pytest.raises(ValueError, match="at least one activity id"):
        assert_that(inst).is_waiting_at()


def test_every_check_reads_the_database_again(par: ProcessEngine) -> None:
    snapshot = par.start("par")
    check = assert_that(snapshot)
    par.complete_task(snapshot.id, "U1", {"b": 2})
    par.complete_task(snapshot.id, "U2")
    # The snapshot still says "active"; the assertion reads what was committed since.
    assert snapshot.state == "active"
    check.is_completed().has_variables(b=2).has_passed("U1", "U2")
    with pytest.raises(AssertionError, match="its state is 'completed'"):
        check.is_active()


def test_passed_and_not_passed(par: ProcessEngine) -> None:
    inst = par.start("par")
    assert_that(inst).has_passed("StartEvent_1", "A", "Split").has_not_passed("U1", "Join")
    with pytest.raises(
        AssertionError, match=r"has_passed\('A', 'U1'\): it has not passed \['U1'\]"
    ):
        assert_that(inst).has_passed("A", "U1")
    with pytest.raises(AssertionError, match=r"it has passed \['A'\]"):
        assert_that(inst).has_not_passed("U2", "A")


def test_passed_in_order_allows_gaps_and_repeats(process_engine: ProcessEngine) -> None:
    process_engine.register_handler("a", lambda ctx: None)
    process_engine.deploy(LOOP)
    inst = process_engine.start("loop")
    process_engine.complete_task(inst.id, "U", {"again": True})
    process_engine.complete_task(inst.id, "U", {"again": False})
    assert_that(inst).is_completed().has_passed_in_order("A", "U", "A", "U", "EndEvent_1")
    assert_that(inst).has_passed_in_order("StartEvent_1", "Again", "EndEvent_1")
    with pytest.raises(AssertionError) as excinfo:
        assert_that(inst).has_passed_in_order("A", "U", "A", "U", "A")
    assert "after passing ['A', 'U', 'A', 'U'] in that order it did not pass 'A'" in failure(
        excinfo
    )
    with pytest.raises(AssertionError, match="did not pass 'StartEvent_1'"):
        assert_that(inst).has_passed_in_order("EndEvent_1", "StartEvent_1")


def test_variables_by_name_and_value(par: ProcessEngine) -> None:
    inst = par.start("par", {"customer": "ann"})
    assert_that(inst).has_variables().has_variables("a", "customer")
    assert_that(inst).has_variables("customer", a=1, items=["x", "y"]).has_no_variables("b")
    with pytest.raises(AssertionError) as excinfo:
        assert_that(inst).has_variables("b", a=2, c=None)
    assert failure(excinfo).startswith(
        f"assert_that('{inst.id}').has_variables('b', a=2, c=None): "
        "'b' is missing; 'a' is 1, expected 2; 'c' is missing"
    )
    with pytest.raises(AssertionError, match=r"has_no_variables\('a'\): it has \['a'\]"):
        assert_that(inst).has_no_variables("a")


def test_empty_variables(process_engine: ProcessEngine) -> None:
    process_engine.deploy(process("bare", user("U")))
    inst = process_engine.start("bare")
    with pytest.raises(AssertionError, match="it has no variables"):
        assert_that(inst).has_variables()


def test_incident_from_an_uncaught_bpmn_error(process_engine: ProcessEngine) -> None:
    def reject(ctx: object) -> None:
        raise BpmnError("REJECTED", "no boundary event catches this")

    process_engine.register_handler("a", reject)
    process_engine.deploy(FAILING)
    inst = process_engine.start("failing")
    assert_that(inst).has_incident().has_incident(at="A").has_incident(message="REJECTED")
    assert_that(inst).has_incident(at="A", message="REJECTED").is_waiting_at("A")
    for check in (lambda: assert_that(inst).is_active(), assert_that(inst).has_no_incident):
        with pytest.raises(AssertionError):
            check()
    with pytest.raises(AssertionError, match=r"has_incident\(at='U'\): no open incident matches"):
        assert_that(inst).has_incident(at="U")
    with pytest.raises(AssertionError, match="no open incident matches"):
        assert_that(inst).has_incident(message="TIMEOUT")


def test_retries_then_incident_then_retry(
    process_engine: ProcessEngine, clock: ManualClock
) -> None:
    flaky = fails_times(2, error=ConnectionError)
    process_engine.register_handler("a", flaky)
    process_engine.deploy(
        process("failing", service("A", handler="a", extra='spillway:retries="1"'), user("U"))
    )
    inst = process_engine.start("failing")
    assert_that(inst).is_active().has_no_incident().has_job(at="A", kind="async-continuation")
    with pytest.raises(AssertionError, match=r"has_job\(kind='timer'\): no job matches"):
        assert_that(inst).has_job(kind="timer")
    clock.advance(3600)
    assert process_engine.run_jobs() == 1
    assert_that(inst).has_incident(at="A", message="simulated failure 2 of 2")
    assert len(flaky.calls) == 2 and flaky.failures == 2

    [incident] = process_engine.incidents(inst.id)
    process_engine.retry(incident.id)
    assert process_engine.run_jobs() == 1
    assert_that(inst).is_active().has_no_incident().is_waiting_exactly_at("U").has_passed("A")
    assert [c.attempt for c in flaky.calls] == [1, 2, 3]
    assert len({c.idempotency_key for c in flaky.calls}) == 1


def test_failure_message_shows_the_whole_instance(
    process_engine: ProcessEngine, clock: ManualClock
) -> None:
    process_engine.register_handler("a", fails_times(1, error=TimeoutError))
    process_engine.deploy(FAILING)
    inst = process_engine.start("failing", {"amount": 30, "note": "x" * 500}, business_key="K-1")
    with pytest.raises(AssertionError) as excinfo:
        assert_that(inst).is_completed()
    text = failure(excinfo)
    assert text.splitlines()[0] == (
        f"assert_that('{inst.id}').is_completed(): its state is 'active'"
    )
    assert f"instance {inst.id} of 'failing' v1, business key 'K-1': state 'active'" in text
    assert "\nwaiting at: A\n" in text
    assert "\nvariables:\n  amount = 30\n  note = 'xxx" in text
    assert re.search(r"  note = 'x+\.\.\.\n", text), "long values are cut"
    assert (
        "  2030-01-01 09:00:00  A (serviceTask)  failed: TimeoutError: "
        "A: simulated failure 1 of 1 (fails_times)\n" in text
    )
    assert "  2030-01-01 09:00:00  A (serviceTask)  running\n" in text
    assert re.search(
        r"open jobs:\n  async-continuation at A, due 2030-01-01 09:00:0\d, retries left 3, "
        r"attempts 1, last error: TimeoutError: A: simulated failure 1 of 1",
        text,
    )
    assert text.endswith("open incidents: none")


def test_message_lists_open_incidents(process_engine: ProcessEngine) -> None:
    def reject(ctx: object) -> None:
        raise BpmnError("REJECTED", "nobody catches it")

    process_engine.register_handler("a", reject)
    process_engine.deploy(FAILING)
    inst = process_engine.start("failing")
    with pytest.raises(AssertionError) as excinfo:
        assert_that(inst).is_completed()
    text = failure(excinfo)
    assert "its state is 'incident'" in text
    assert "\nopen incidents:\n  at A since 2030-01-01 09:00:00: " in text
    assert "REJECTED" in text.split("open incidents:")[1]


def test_states(par: ProcessEngine) -> None:
    inst = par.start("par")
    for check in ("is_completed", "is_terminated", "is_ended"):
        with pytest.raises(AssertionError, match=rf"\.{check}\(\): its state is 'active'"):
            getattr(assert_that(inst), check)()
    par.complete_task(inst.id, "U1")
    par.complete_task(inst.id, "U2")
    assert_that(inst).is_completed().is_ended()
    with pytest.raises(AssertionError, match="its state is 'completed'"):
        assert_that(inst).is_terminated()


def test_an_id_works_like_the_instance(par: ProcessEngine) -> None:
    inst = par.start("par")
    assert_that(inst.id).is_waiting_at("U1")
    with pytest.raises(AssertionError, match="no process instance 'nope'"):
        assert_that("nope").is_active()
    with pytest.raises(TypeError, match="needs a ProcessInstance or an instance id"):
        assert_that(42)  # type: ignore[arg-type]


def test_engine_explicit_or_in_use(eng: ProcessEngine) -> None:
    """Outside the process_engine fixture: ``engine=`` or ``use_engine``; else a clear error."""
    eng.deploy(process("bare", user("U")))
    inst = eng.start("bare")
    with pytest.raises(RuntimeError, match="no process engine in use"):
        assert_that(inst)
    assert_that(inst, engine=eng).is_waiting_at("U")
    with use_engine(eng):
        assert_that(inst).is_waiting_at("U")
    with pytest.raises(RuntimeError, match="no process engine in use"):
        assert_that(inst)


def test_explicit_engine_wins_over_the_fixture(
    process_engine: ProcessEngine, eng: ProcessEngine
) -> None:
    eng.deploy(process("bare", user("U")))
    inst = eng.start("bare")
    assert_that(inst, engine=eng).is_waiting_at("U")
    with pytest.raises(AssertionError, match="no process instance"):
        assert_that(inst).is_active()  # the fixture's engine has another database
