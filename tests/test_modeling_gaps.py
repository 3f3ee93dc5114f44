"""Modeler drawings that used to be refused: standard loops without a rule, message events
without a message, FEEL conditions and pass-through complex gateways (docs/modeling.md)."""

from __future__ import annotations

import pytest

from engine import DeploymentError, ProcessEngine, TaskContext
from engine.core.errors import ExpressionError
from tests.bpmnbuild import process, service, user
from tests.conftest import EngineFactory

FEEL = "https://www.omg.org/spec/DMN/20191111/FEEL/"


def loop(
    condition: str | None = None,
    *,
    test_before: str = "false",
    maximum: str | None = None,
    language: str | None = None,
) -> str:
    body = ""
    if condition is not None:
        lang = f' language="{language}"' if language else ""
        body = (
            f'<bpmn:loopCondition xsi:type="bpmn:tFormalExpression"{lang}>{condition}'
            "</bpmn:loopCondition>"
        )
    attrs = f' loopMaximum="{maximum}"' if maximum is not None else ""
    return (
        f'<bpmn:standardLoopCharacteristics testBefore="{test_before}"{attrs}>{body}'
        "</bpmn:standardLoopCharacteristics>"
    )


def counting(eng: ProcessEngine) -> None:
    def inc(ctx: TaskContext) -> dict[str, object]:
        return {"n": int(ctx.variables.get("n", 0)) + 1}

    eng.register_handler("inc", inc)


# --- loops ---------------------------------------------------------------------------------


@pytest.mark.parametrize("test_before", ["false", "true"])
def test_loop_without_condition_or_maximum_runs_once(eng: ProcessEngine, test_before: str) -> None:
    counting(eng)
    eng.deploy(process("p", service("S", "inc", body=loop(test_before=test_before))))
    inst = eng.start("p", variables={"n": 0})
    assert inst.state == "completed"
    assert inst.variables["n"] == 1


@pytest.mark.parametrize(
    ("condition", "language"),
    [("${n &lt; 3}", None), ("n &lt; 3", FEEL)],
    ids=["juel", "feel"],
)
def test_loop_repeats_while_condition_holds(
    eng: ProcessEngine, condition: str, language: str | None
) -> None:
    counting(eng)
    eng.deploy(process("p", service("S", "inc", body=loop(condition, language=language))))
    assert eng.start("p", variables={"n": 0}).variables["n"] == 3


def test_loop_tested_before_may_run_zero_times(eng: ProcessEngine) -> None:
    counting(eng)
    eng.deploy(process("p", service("S", "inc", body=loop("${n &lt; 0}", test_before="true"))))
    assert eng.start("p", variables={"n": 0}).variables["n"] == 0


def test_loop_maximum_alone_repeats_that_often(eng: ProcessEngine) -> None:
    counting(eng)
    eng.deploy(process("p", service("S", "inc", body=loop(maximum="4"))))
    assert eng.start("p", variables={"n": 0}).variables["n"] == 4


def test_loop_of_user_task_survives_reloads(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.deploy(process("p", f'<bpmn:userTask id="U">{loop("${!done}")}</bpmn:userTask>'))
    inst = eng.start("p", variables={"done": False})
    other = make_engine()  # a second node: state comes from the database
    inst = other.complete_task(inst.id, "U", variables={"done": False})
    assert inst.waiting_at == ["U"]
    inst = eng.complete_task(inst.id, "U", variables={"done": True})
    assert inst.state == "completed"


def test_loop_cap_opens_an_incident_and_retry_resumes(make_engine: EngineFactory) -> None:
    eng = make_engine(max_loop_iterations=3)
    counting(eng)
    eng.deploy(process("p", service("S", "inc", body=loop("${n &lt; 5}"))))
    inst = eng.start("p", variables={"n": 0})
    assert inst.state == "incident"
    assert inst.variables["n"] == 3
    (incident,) = eng.incidents(inst.id)
    assert incident.activity_id == "S"
    assert "stopped after 3 iterations" in incident.message
    eng.retry(incident.id)
    eng.run_jobs()
    inst = eng.get_instance(inst.id)
    assert inst.state == "completed"
    assert inst.variables["n"] == 5
    assert eng.incidents(inst.id) == []
    assert eng.jobs(inst.id) == []


def test_loop_maximum_that_is_not_a_number_is_refused(eng: ProcessEngine) -> None:
    counting(eng)
    with pytest.raises(DeploymentError, match=r"element 'S': loopMaximum '\$\{n\}'"):
        eng.deploy(process("p", service("S", "inc", body=loop(maximum="${n}"))))


# --- message events without a message ------------------------------------------------------


def test_message_catch_without_message_ref_waits_for_its_name(eng: ProcessEngine) -> None:
    event = (
        '<bpmn:intermediateCatchEvent id="Paid" name="Payment&#10;  received">'
        "<bpmn:messageEventDefinition /></bpmn:intermediateCatchEvent>"
    )
    eng.deploy(process("p", event))
    inst = eng.start("p")
    assert inst.waiting_at == ["Paid"]
    inst = eng.correlate_message("Payment received", variables={"amount": 5})
    assert inst.state == "completed"
    assert inst.variables["amount"] == 5


def test_unnamed_catch_with_unknown_message_ref_uses_the_event_id(eng: ProcessEngine) -> None:
    event = (
        '<bpmn:intermediateCatchEvent id="Wait">'
        '<bpmn:messageEventDefinition messageRef="Nowhere" /></bpmn:intermediateCatchEvent>'
    )
    eng.deploy(process("p", event))
    inst = eng.start("p")
    assert eng.correlate_message("Wait").id == inst.id
    assert eng.get_instance(inst.id).state == "completed"


def test_prefixed_message_ref_resolves_to_the_message(eng: ProcessEngine) -> None:
    event = (
        '<bpmn:intermediateCatchEvent id="Wait">'
        '<bpmn:messageEventDefinition messageRef="tns:Msg" /></bpmn:intermediateCatchEvent>'
    )
    eng.deploy(process("p", event, definitions='<bpmn:message id="Msg" name="go" />'))
    inst = eng.start("p")
    assert eng.correlate_message("go").id == inst.id


def test_message_start_and_throw_without_message_ref(eng: ProcessEngine) -> None:
    start = (
        '<bpmn:startEvent id="StartEvent_1" name="Order placed">'
        "<bpmn:messageEventDefinition /></bpmn:startEvent>"
    )
    throw = (
        '<bpmn:intermediateThrowEvent id="Notify" name="Order noted">'
        "<bpmn:messageEventDefinition /></bpmn:intermediateThrowEvent>"
    )
    eng.deploy(process("p", throw, user("U"), start=start))
    inst = eng.correlate_message("Order placed", variables={"order": 7})
    assert inst.process_key == "p"
    assert inst.waiting_at == ["U"]


# --- FEEL conditions -----------------------------------------------------------------------


def feel_gateway(language: str = FEEL) -> bytes:
    def cond(flow: str, target: str, text: str) -> str:
        return (
            f'<bpmn:sequenceFlow id="{flow}" sourceRef="G" targetRef="{target}">'
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" language="{language}">'
            f"{text}</bpmn:conditionExpression></bpmn:sequenceFlow>"
        )

    return process(
        "p",
        '<bpmn:exclusiveGateway id="G" />',
        user("Yes"),
        user("No"),
        flows=[("StartEvent_1", "G"), ("Yes", "EndEvent_1"), ("No", "EndEvent_1")],
        extra=cond("ToYes", "Yes", 'Vacation Approval = "Approved" and days &lt;= 10')
        + cond("ToNo", "No", 'not(Vacation Approval = "Approved") or days &gt; 10'),
    )


@pytest.mark.parametrize(
    ("variables", "waiting"),
    [
        ({"Vacation Approval": "Approved", "days": 3}, ["Yes"]),
        ({"Vacation Approval": "Approved", "days": 12}, ["No"]),
        ({"Vacation Approval": "Refused", "days": 1}, ["No"]),
    ],
)
def test_feel_conditions_choose_the_flow(
    eng: ProcessEngine, variables: dict[str, object], waiting: list[str]
) -> None:
    eng.deploy(feel_gateway())
    assert eng.start("p", variables=variables).waiting_at == waiting


def test_feel_condition_on_unknown_variable_names_variable_and_element(
    eng: ProcessEngine,
) -> None:
    eng.deploy(feel_gateway())
    with pytest.raises(ExpressionError, match="element 'G': unknown variable 'Vacation Approval'"):
        eng.start("p", variables={"days": 1})
    assert eng.instances() == []


def test_condition_in_another_language_is_still_refused(eng: ProcessEngine) -> None:
    with pytest.raises(DeploymentError, match="a condition in javascript cannot be evaluated"):
        eng.deploy(feel_gateway(language="javascript"))


# --- complex gateways ----------------------------------------------------------------------


def test_pass_through_complex_gateway_runs(eng: ProcessEngine) -> None:
    eng.deploy(process("p", '<bpmn:complexGateway id="C" />', user("U")))
    inst = eng.start("p")
    assert inst.waiting_at == ["U"]
    assert "C" in [h.activity_id for h in eng.history(inst.id)]


def test_complex_gateway_that_splits_is_refused_with_the_reason(eng: ProcessEngine) -> None:
    bpmn = process(
        "p",
        '<bpmn:complexGateway id="C" />',
        user("A"),
        user("B"),
        flows=[
            ("StartEvent_1", "C"),
            ("C", "A"),
            ("C", "B"),
            ("A", "EndEvent_1"),
            ("B", "EndEvent_1"),
        ],
    )
    with pytest.raises(DeploymentError, match="element 'C': complex gateways that join or split"):
        eng.deploy(bpmn)
    with pytest.raises(DeploymentError, match="it splits into 2 flows"):
        eng.deploy(bpmn)
