"""Camunda 7 activity mappings (camunda:inputOutput), camunda:expression service tasks and
camunda:errorEventDefinition on external tasks, end to end through ProcessEngine."""

from __future__ import annotations

import pytest

from engine import ProcessEngine, RetryPolicy, TaskContext
from engine.core.errors import DeploymentError, ExpressionError, HandlerError
from engine.testing import ManualClock, advance_and_run
from tests.bpmnbuild import process, service
from tests.conftest import EngineFactory

NO_JITTER = RetryPolicy(retries=2, initial_delay=10, backoff_coefficient=1, jitter=0)


def io(*params: str) -> str:
    return (
        "<bpmn:extensionElements><camunda:inputOutput>"
        + "".join(params)
        + "</camunda:inputOutput></bpmn:extensionElements>"
    )


def inp(name: str, body: str = "") -> str:
    return f'<camunda:inputParameter name="{name}">{body}</camunda:inputParameter>'


def out(name: str, body: str = "") -> str:
    return f'<camunda:outputParameter name="{name}">{body}</camunda:outputParameter>'


def user(task_id: str, body: str = "") -> str:
    return f'<bpmn:userTask id="{task_id}">{body}</bpmn:userTask>'


class Recorder:
    def __init__(self, result: dict[str, object] | None = None) -> None:
        self.result = result or {}
        self.seen: list[dict[str, object]] = []

    def __call__(self, ctx: TaskContext) -> dict[str, object]:
        self.seen.append(dict(ctx.variables))
        return self.result


def reload(eng: ProcessEngine, make_engine: EngineFactory) -> ProcessEngine:
    """A second engine on the same database: the instance comes from storage."""
    other = make_engine()
    for name, fn in eng.handlers.items():
        other.register_handler(name, fn)
    return other


# -- input and output parameters ---------------------------------------------------------------


def test_inputs_are_local_outputs_are_written_and_locals_do_not_leak(eng: ProcessEngine) -> None:
    calc = Recorder({"userId": "changed", "forecast": 42, "extra": True})
    eng.register_handler("calc", calc)
    mapping = io(
        inp("userId", "${id}"),
        inp("costSum", "${sum * 2}"),
        inp("label", "  order ${id}  "),
        inp("nothing"),
        out("result", "${forecast + 1}"),
        out("who", "${userId}"),
    )
    eng.deploy(process("p", service("Calc", "calc", body=mapping), user("Next")))
    inst = eng.start("p", {"id": "u-1", "sum": 10})
    [seen] = calc.seen
    assert seen == {
        "id": "u-1",
        "sum": 10,
        "userId": "u-1",
        "costSum": 20,
        "label": "order u-1",
        "nothing": None,
    }
    # A returned name that is an input parameter stays local (Camunda's setVariable on an
    # existing local); other names are process variables; outputs see both.
    assert inst.variables == {
        "id": "u-1",
        "sum": 10,
        "forecast": 42,
        "extra": True,
        "result": 43,
        "who": "changed",
    }


def test_lists_and_maps_nested(eng: ProcessEngine) -> None:
    rec = Recorder()
    eng.register_handler("h", rec)
    mapping = io(
        inp(
            "items",
            "<camunda:list><camunda:value>a</camunda:value><camunda:value>${1 + 1}"
            "</camunda:value><camunda:list><camunda:value>1</camunda:value>"
            "<camunda:value>${n}</camunda:value></camunda:list>"
            '<camunda:map><camunda:entry key="k">v</camunda:entry></camunda:map>'
            "</camunda:list>",
        ),
        out(
            "config",
            '<camunda:map><camunda:entry key="foo">bar</camunda:entry>'
            '<camunda:entry key="${keyName}"><camunda:map>'
            '<camunda:entry key="hello">${items[1]}</camunda:entry></camunda:map>'
            '</camunda:entry><camunda:entry key="list"><camunda:list>'
            "<camunda:value>${n}</camunda:value></camunda:list></camunda:entry></camunda:map>",
        ),
    )
    eng.deploy(process("p", service("A", "h", body=mapping)))
    inst = eng.start("p", {"n": 3, "keyName": "inner"})
    assert rec.seen[0]["items"] == ["a", 2, ["1", 3], {"k": "v"}]
    assert inst.state == "completed"
    assert inst.variables == {
        "n": 3,
        "keyName": "inner",
        "config": {"foo": "bar", "inner": {"hello": 2}, "list": [3]},
    }


def test_user_task_locals_survive_storage_and_stay_local(
    eng: ProcessEngine, make_engine: EngineFactory
) -> None:
    mapping = io(inp("draft", "${amount + 1}"), out("approved", "${draft}"))
    eng.deploy(process("p", user("Review", mapping), user("After")))
    inst = eng.start("p", {"amount": 5})
    assert inst.waiting_at == ["Review"] and inst.variables == {"amount": 5}
    other = reload(eng, make_engine)
    # A completion variable named like an input parameter stays local; others are global.
    other.complete_task(inst.id, "Review", {"draft": 99, "note": "ok"})
    after = other.get_instance(inst.id)
    assert after.waiting_at == ["After"]
    assert after.variables == {"amount": 5, "note": "ok", "approved": 99}
    assert all("draft" not in str(h) for h in other.history(inst.id))


def test_throw_event_output_sets_variables(eng: ProcessEngine) -> None:
    throw = (
        '<bpmn:intermediateThrowEvent id="Set">'
        + io(inp("base", "${a * 10}"), out("b", "${base + 1}"))
        + "</bpmn:intermediateThrowEvent>"
    )
    eng.deploy(process("p", throw))
    inst = eng.start("p", {"a": 4})
    assert inst.state == "completed" and inst.variables == {"a": 4, "b": 41}


def test_python_script_value_runs_only_when_scripts_are_allowed(
    make_engine: EngineFactory,
) -> None:
    script = '<camunda:script scriptFormat="python">y = a * 3\ny + 1</camunda:script>'
    source = process("p", user("U", io(inp("x", script), out("x_out", "${x}"))))
    trusted = make_engine(allow_scripts=True)
    trusted.deploy(source)
    inst = trusted.start("p", {"a": 2})
    trusted.complete_task(inst.id, "U", {})
    assert trusted.get_instance(inst.id).variables == {"a": 2, "x_out": 7}

    locked = make_engine()
    with pytest.raises(ExpressionError, match=r"element 'U': input parameter 'x'.*disabled"):
        locked.start("p", {"a": 2})


def test_script_task_sees_its_locals(make_engine: EngineFactory) -> None:
    eng = make_engine(allow_scripts=True)
    task = (
        '<bpmn:scriptTask id="S" scriptFormat="python">'
        + io(inp("rate", "${0.5}"), out("paid", "${total}"))
        + "<bpmn:script>total = amount * rate\nrate = 2</bpmn:script></bpmn:scriptTask>"
    )
    eng.deploy(process("p", task))
    inst = eng.start("p", {"amount": 10})
    assert inst.variables == {"amount": 10, "total": 5.0, "paid": 5.0}


# -- errors in mappings ------------------------------------------------------------------------


def test_bad_input_expression_names_the_element(eng: ProcessEngine) -> None:
    eng.deploy(process("p", user("Review", io(inp("x", "${missing.field}")))))
    with pytest.raises(ExpressionError, match=r"element 'Review': input parameter 'x'"):
        eng.start("p")
    assert eng.instances() == []


def test_bad_output_mapping_on_sync_service_task_fails_the_call(
    make_engine: EngineFactory,
) -> None:
    eng = make_engine(async_on_error=False)
    eng.register_handler("h", lambda ctx: {"r": 1})
    eng.deploy(process("p", service("A", "h", body=io(out("y", "${r.nope()}")))))
    with pytest.raises(HandlerError, match=r"element 'A': output parameter 'y'"):
        eng.start("p")


def test_failing_input_mapping_is_retried_then_an_incident(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=NO_JITTER)
    rec = Recorder({"done": True})
    eng.register_handler("h", rec)
    eng.deploy(process("p", service("A", "h", body=io(inp("x", "${order.id}")))))
    inst = eng.start("p", {"order": None})
    assert inst.waiting_at == ["A"] and rec.seen == []
    [job] = eng.jobs(inst.id)
    assert "element 'A': input parameter 'x'" in (job.last_error or "")
    advance_and_run(clock, eng, 20)  # both retries, 10 s apart
    [incident] = eng.incidents(inst.id)
    assert incident.activity_id == "A" and "input parameter 'x'" in incident.message
    assert eng.get_instance(inst.id).state == "incident"


# -- camunda:expression service tasks ----------------------------------------------------------


def test_expression_service_task_stores_its_result(eng: ProcessEngine) -> None:
    task = service(
        "Calc",
        extra='camunda:expression="${price * qty}" camunda:resultVariable="total"',
        body=io(inp("qty", "${count + 1}")),
    )
    send = service("Note", extra='camunda:expression="${total > 10}"', tag="sendTask")
    eng.deploy(process("p", task, send))
    inst = eng.start("p", {"price": 4, "count": 2})
    assert inst.state == "completed"
    assert inst.variables == {"price": 4, "count": 2, "total": 12}
    assert [h.activity_id for h in eng.history(inst.id) if h.outcome == "completed"][1:3] == [
        "Calc",
        "Note",
    ]


def test_failing_expression_becomes_a_retry_job(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=NO_JITTER)
    task = service("Bean", extra='camunda:expression="${mailer.send(order)}"')
    eng.deploy(process("p", task))
    inst = eng.start("p", {"order": 1})
    assert inst.state == "active" and inst.waiting_at == ["Bean"]
    [job] = eng.jobs(inst.id)
    assert job.activity_id == "Bean" and job.retries_left == 2
    assert "element 'Bean': camunda:expression ${mailer.send(order)}" in (job.last_error or "")
    advance_and_run(clock, eng, 20)  # both retries, 10 s apart
    assert [i.activity_id for i in eng.incidents(inst.id)] == ["Bean"]


# -- external tasks ----------------------------------------------------------------------------

ERRORS = (
    '<bpmn:error id="Err_Declined" name="declined" errorCode="CARD_DECLINED" />'
    '<bpmn:error id="Err_Other" errorCode="OTHER" />'
)


def external_process(body: str) -> bytes:
    task = service("Charge", extra='camunda:type="external" camunda:topic="charge"', body=body)
    boundary = (
        '<bpmn:boundaryEvent id="Declined" attachedToRef="Charge">'
        '<bpmn:errorEventDefinition errorRef="Err_Declined" /></bpmn:boundaryEvent>'
        '<bpmn:userTask id="Handle" /><bpmn:endEvent id="End_Declined" />'
    )
    flows = [
        ("StartEvent_1", "Charge"),
        ("Charge", "Done"),
        ("Done", "EndEvent_1"),
        ("Declined", "Handle"),
        ("Handle", "End_Declined"),
    ]
    return process(
        "pay",
        task,
        user("Done"),
        boundary,
        flows=flows,
        definitions=ERRORS,
        end=('<bpmn:endEvent id="EndEvent_1" />'),
    )


def test_external_worker_sees_locals_and_outputs_apply(
    eng: ProcessEngine, make_engine: EngineFactory
) -> None:
    eng.deploy(external_process(io(inp("cents", "${amount * 100}"), out("charged", "${ref}"))))
    inst = eng.start("pay", {"amount": 3})
    other = reload(eng, make_engine)
    [task] = other.external_tasks.fetch_and_lock("w", ["charge"])
    assert task.variables == {"amount": 3, "cents": 300}
    assert other.external_tasks.complete(task.id, "w", {"ref": "R-1", "cents": 0})
    after = other.get_instance(inst.id)
    assert after.waiting_at == ["Done"]
    assert after.variables == {"amount": 3, "ref": "R-1", "charged": "R-1"}


def test_error_event_definition_routes_to_the_error_boundary(eng: ProcessEngine) -> None:
    definitions = (
        "<bpmn:extensionElements>"
        '<camunda:errorEventDefinition id="E1" errorRef="Err_Declined" '
        'expression="${status == &apos;declined&apos;}" />'
        '<camunda:errorEventDefinition id="E2" errorRef="Err_Other" expression="${false}" />'
        "</bpmn:extensionElements>"
    )
    eng.deploy(external_process(definitions))
    declined = eng.start("pay", {"amount": 3})
    ok = eng.start("pay", {"amount": 4})
    tasks = {t.instance_id: t for t in eng.external_tasks.fetch_and_lock("w", ["charge"])}
    assert eng.external_tasks.complete(tasks[declined.id].id, "w", {"status": "declined"})
    assert eng.external_tasks.complete(tasks[ok.id].id, "w", {"status": "paid"})
    assert eng.get_instance(declined.id).waiting_at == ["Handle"]
    assert eng.get_instance(declined.id).variables["status"] == "declined"
    assert eng.get_instance(ok.id).waiting_at == ["Done"]
    outcomes = {h.activity_id: h.outcome for h in eng.history(declined.id)}
    assert outcomes["Charge"] == "error"


# -- what deploy refuses -----------------------------------------------------------------------


def test_refusals_name_element_and_reason(eng: ProcessEngine) -> None:
    # JavaScript runs (tests/test_javascript.py); other languages are refused.
    groovy = '<camunda:script scriptFormat="groovy">1 + 1</camunda:script>'
    with pytest.raises(DeploymentError, match=r"element 'A': a groovy script in a mapping"):
        eng.deploy(process("p1", service("A", "h", body=io(inp("x", groovy)))))
    # Subprocess mappings run (tests/test_subprocess_mappings.py).
    not_external = service(
        "B",
        "h",
        body="<bpmn:extensionElements><camunda:errorEventDefinition id='E' "
        "errorRef='Err_Other' expression='${true}' /></bpmn:extensionElements>",
    )
    with pytest.raises(DeploymentError, match=r"element 'B': .*applies only to external"):
        eng.deploy(process("p3", not_external, definitions=ERRORS))
    multi = (
        '<bpmn:userTask id="M">' + io(out("y", "1")) + "<bpmn:multiInstanceLoopCharacteristics "
        'camunda:collection="${items}" camunda:elementVariable="item" /></bpmn:userTask>'
    )
    with pytest.raises(DeploymentError, match=r"element 'M': output parameters on a multi"):
        eng.deploy(process("p4", multi))
