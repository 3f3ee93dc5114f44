"""``correlate_message_all`` (Camunda's ``correlateAll``) and ``instance_id`` narrowing."""

from __future__ import annotations

import pytest

from engine import CorrelationError, EngineError, ProcessEngine
from tests.bpmnbuild import catch_message, process, user

MESSAGE = '<bpmn:message id="M" name="paid" />'


def _waiting(eng: ProcessEngine) -> None:
    # Paid -> a gateway that has no way out for kind "odd": delivering there fails the call.
    gateway = '<bpmn:exclusiveGateway id="Gw" />'
    flows = [
        ("StartEvent_1", "Paid"),
        ("Paid", "Gw"),
        ("Gw", "Ship", "kind == 'even'"),
        ("Ship", "EndEvent_1"),
    ]
    eng.deploy(
        process(
            "p", catch_message("Paid", "M"), gateway, user("Ship"), flows=flows, definitions=MESSAGE
        )
    )


def test_all_delivers_to_every_match_in_one_call(eng: ProcessEngine) -> None:
    _waiting(eng)
    a = eng.start("p", {"kind": "even", "batch": 1})
    b = eng.start("p", {"kind": "even", "batch": 1})
    other = eng.start("p", {"kind": "even", "batch": 2})
    reached = eng.correlate_message_all("paid", {"amount": 5}, correlation={"batch": 1})
    assert sorted(i.id for i in reached) == sorted([a.id, b.id])
    for inst in (a, b):
        now = eng.get_instance(inst.id)
        assert now.waiting_at == ["Ship"] and now.variables["amount"] == 5
    assert eng.get_instance(other.id).waiting_at == ["Paid"]
    assert eng.correlate_message_all("paid", correlation={"batch": 9}) == []


def test_all_is_one_transaction_a_failing_delivery_applies_none(eng: ProcessEngine) -> None:
    _waiting(eng)
    good = eng.start("p", {"kind": "even"})
    bad = eng.start("p", {"kind": "odd"})
    revs = {i: eng.store.instance(i)["rev"] for i in (good.id, bad.id)}
    with pytest.raises(EngineError):
        eng.correlate_message_all("paid")
    for iid, rev in revs.items():
        assert eng.get_instance(iid).waiting_at == ["Paid"]
        assert eng.store.instance(iid)["rev"] == rev


def test_all_starts_the_listening_process_too(eng: ProcessEngine) -> None:
    _waiting(eng)
    start = (
        '<bpmn:startEvent id="ByMessage"><bpmn:messageEventDefinition messageRef="M" />'
        "</bpmn:startEvent>"
    )
    eng.deploy(process("starter", user("Review"), start=start, definitions=MESSAGE))
    waiting = eng.start("p", {"kind": "even"})
    reached = eng.correlate_message_all("paid", {"amount": 1}, business_key=None)
    assert [i.process_key for i in reached] == ["p", "starter"]
    assert reached[0].id == waiting.id
    assert reached[1].waiting_at == ["Review"] and reached[1].variables == {"amount": 1}
    # Narrowed to one instance, nothing is started.
    second = eng.start("p", {"kind": "even"})
    (only,) = eng.correlate_message_all("paid", instance_id=second.id)
    assert only.id == second.id
    assert len(eng.instances(process_key="starter")) == 1


def test_instance_id_narrows_a_single_correlation(eng: ProcessEngine) -> None:
    _waiting(eng)
    first = eng.start("p", {"kind": "even"})
    second = eng.start("p", {"kind": "even"})
    with pytest.raises(CorrelationError, match="matches 2 instances"):
        eng.correlate_message("paid")
    done = eng.correlate_message("paid", {"amount": 2}, instance_id=second.id)
    assert done.id == second.id and done.waiting_at == ["Ship"]
    assert eng.get_instance(first.id).waiting_at == ["Paid"]
    with pytest.raises(CorrelationError, match=f"instance {second.id} does not wait"):
        eng.correlate_message("paid", instance_id=second.id)


@pytest.mark.parametrize("verb", ["correlate_message", "correlate_message_all"])
def test_a_correlation_that_is_not_a_mapping_is_refused_naming_it(
    eng: ProcessEngine, verb: str
) -> None:
    _waiting(eng)
    inst = eng.start("p", {"kind": "even", "batch": 1})
    with pytest.raises(EngineError, match=rf"{verb}\('paid'\): correlation must be a mapping"):
        getattr(eng, verb)("paid", correlation=["batch", 1])
    assert eng.get_instance(inst.id).waiting_at == ["Paid"]
