"""JavaScript in BPMN files (script tasks and camunda:script mapping values), run in the QuickJS
sandbox, end to end through ProcessEngine; plus the sandbox's own limits."""

from __future__ import annotations

import pytest

from engine import ProcessEngine, RetryPolicy, TaskContext
from engine.core.errors import DeploymentError, ExpressionError
from engine.expressions import javascript
from engine.testing import ManualClock, advance_and_run
from tests.bpmnbuild import process, service
from tests.conftest import EngineFactory

NO_JITTER = RetryPolicy(retries=2, initial_delay=10, backoff_coefficient=1, jitter=0)


def script_task(task_id: str, source: str, fmt: str = "javascript", attrs: str = "") -> str:
    return (
        f'<bpmn:scriptTask id="{task_id}" scriptFormat="{fmt}" {attrs}>'
        f"<bpmn:script><![CDATA[{source}]]></bpmn:script></bpmn:scriptTask>"
    )


def io(*params: str) -> str:
    return (
        "<bpmn:extensionElements><camunda:inputOutput>"
        + "".join(params)
        + "</camunda:inputOutput></bpmn:extensionElements>"
    )


def js(source: str, fmt: str = "javascript") -> str:
    return f'<camunda:script scriptFormat="{fmt}"><![CDATA[{source}]]></camunda:script>'


def inp(name: str, body: str) -> str:
    return f'<camunda:inputParameter name="{name}">{body}</camunda:inputParameter>'


def out(name: str, body: str) -> str:
    return f'<camunda:outputParameter name="{name}">{body}</camunda:outputParameter>'


def user(task_id: str, body: str = "") -> str:
    return f'<bpmn:userTask id="{task_id}">{body}</bpmn:userTask>'


# -- script tasks ------------------------------------------------------------------------------


def test_script_task_sets_variables_and_reads_globals(
    eng: ProcessEngine, make_engine: EngineFactory
) -> None:
    source = """
        var total = amount * order.qty;          // globals are the process variables
        execution.setVariable("total", total);
        execution.setVariable("where", [execution.getProcessBusinessKey(),
                                        execution.getCurrentActivityId()]);
        execution.setVariable("seen", Object.keys(execution.getVariables()).sort());
        execution.setVariable("has", [execution.hasVariable("amount"), execution.hasVariable("x")]);
        execution.setVariable("missing", execution.getVariable("x"));
        execution.setVariable("iid", execution.getProcessInstanceId());
        amount = 1000;                           // a copy: the process variable stays
    """
    eng.deploy(process("p", script_task("Calc", source, fmt="JavaScript"), user("U")))
    inst = eng.start("p", {"amount": 4, "order": {"qty": 3}}, business_key="B-1")
    stored = make_engine().get_instance(inst.id)
    assert stored.waiting_at == ["U"]
    assert stored.variables == {
        "amount": 4,
        "order": {"qty": 3},
        "total": 12,
        "where": ["B-1", "Calc"],
        "seen": ["amount", "order", "total", "where"],  # sees its own earlier writes
        "has": [True, False],
        "missing": None,
        "iid": inst.id,
    }


@pytest.mark.parametrize("fmt", ["js", "ECMAScript", "javascript"])
def test_result_variable_holds_the_last_expression(eng: ProcessEngine, fmt: str) -> None:
    source = 'var n = items.length; ({count: n, label: "order-" + id, ok: n > 1})'
    task = script_task("S", source, fmt=fmt, attrs='camunda:resultVariable="summary"')
    eng.deploy(process("p", task))
    inst = eng.start("p", {"items": [1, 2], "id": 7})
    assert inst.state == "completed"
    assert inst.variables["summary"] == {"count": 2, "label": "order-7", "ok": True}


def test_script_task_set_variable_of_an_input_parameter_stays_local(eng: ProcessEngine) -> None:
    task = (
        '<bpmn:scriptTask id="S" scriptFormat="javascript">'
        + io(inp("rate", "${0.5}"), out("paid", "${total}"))
        + "<bpmn:script>execution.setVariable('total', amount * rate);"
        + " execution.setVariable('rate', 2)</bpmn:script></bpmn:scriptTask>"
    )
    eng.deploy(process("p", task))
    inst = eng.start("p", {"amount": 10})
    assert inst.variables == {"amount": 10, "total": 5, "paid": 5}


def test_script_error_names_the_task_and_line_and_stores_nothing(eng: ProcessEngine) -> None:
    eng.deploy(process("p", script_task("Check", "var a = 1;\nnull.field")))
    with pytest.raises(ExpressionError, match=r"script task 'Check'.*TypeError.*\(line 2\)"):
        eng.start("p")
    assert eng.instances() == []


def test_setting_a_function_or_undefined_is_an_error_naming_the_variable(
    eng: ProcessEngine,
) -> None:
    eng.deploy(process("p", script_task("F", "execution.setVariable('cb', function () {})")))
    with pytest.raises(ExpressionError, match=r"script task 'F'.*variable 'cb' is a function"):
        eng.start("p")
    eng.deploy(process("q", script_task("U", "execution.setVariable('u', undefined)")))
    with pytest.raises(ExpressionError, match=r"script task 'U'.*variable 'u' is undefined"):
        eng.start("q")
    assert eng.instances() == []


def test_endless_loop_is_stopped_by_the_time_limit(eng: ProcessEngine) -> None:
    eng.deploy(process("p", script_task("Spin", "while (true) {}")))
    with pytest.raises(ExpressionError, match=r"script task 'Spin'.*time limit"):
        eng.start("p")
    assert eng.instances() == []


def test_huge_allocation_is_stopped_by_the_memory_limit(eng: ProcessEngine) -> None:
    source = "var chunks = []; while (true) { chunks.push(new Array(100000).fill(chunks.length)) }"
    eng.deploy(process("p", script_task("Hog", source)))
    with pytest.raises(ExpressionError, match=r"script task 'Hog'.*memory limit of 32 MiB"):
        eng.start("p")


def test_javascript_can_be_switched_off(make_engine: EngineFactory) -> None:
    eng = make_engine(allow_javascript=False)
    eng.deploy(process("p", script_task("S", "execution.setVariable('x', 1)")))
    with pytest.raises(ExpressionError, match=r"script task 'S'.*allow_javascript=False"):
        eng.start("p")
    eng.deploy(process("q", user("U", io(inp("x", js("1 + 1"))))))
    with pytest.raises(ExpressionError, match=r"element 'U': input parameter 'x'.*disabled"):
        eng.start("q")
    assert eng.instances() == []


# -- scripts in input/output parameters ---------------------------------------------------------


def test_loan_granting_input_script_sets_a_process_variable(
    eng: ProcessEngine, make_engine: EngineFactory
) -> None:
    # The shape of camunda-bpm-examples' loan-granting.bpmn.
    body = io(inp("Input_2rvtuu9", js('execution.setVariable("defaultScore", 5);')))
    task = service("Check", extra='camunda:type="external" camunda:topic="creditScoreChecker"')
    task = task.replace("></bpmn:serviceTask>", f">{body}</bpmn:serviceTask>")
    eng.deploy(process("loan", task, user("Done")))
    inst = eng.start("loan")
    other = make_engine()
    [ext] = other.external_tasks.fetch_and_lock("w", ["creditScoreChecker"])
    assert ext.variables == {"defaultScore": 5, "Input_2rvtuu9": None}
    assert other.external_tasks.complete(ext.id, "w", {"score": 7})
    assert other.get_instance(inst.id).variables == {"defaultScore": 5, "score": 7}


def test_mapping_script_value_is_its_last_expression(eng: ProcessEngine) -> None:
    seen: list[dict[str, object]] = []

    def handler(ctx: TaskContext) -> dict[str, object]:
        seen.append(dict(ctx.variables))
        return {"result": ctx.variables["doubled"] + 1}

    eng.register_handler("h", handler)
    mapping = io(
        inp("doubled", js("var d = base * 2;\nd")),
        inp("label", js("'#' + doubled", fmt="js")),  # later parameters see earlier ones
        out("summary", js("execution.setVariable('audit', label); ({r: result, l: label})")),
    )
    eng.deploy(process("p", service("A", "h", body=mapping)))
    inst = eng.start("p", {"base": 3})
    assert seen == [{"base": 3, "doubled": 6, "label": "#6"}]
    assert inst.variables == {
        "base": 3,
        "result": 7,
        "audit": "#6",
        "summary": {"r": 7, "l": "#6"},
    }


def test_failing_input_script_on_a_service_task_is_retried_then_an_incident(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=NO_JITTER)
    calls: list[TaskContext] = []

    def handler(ctx: TaskContext) -> None:
        calls.append(ctx)

    eng.register_handler("h", handler)
    body = io(inp("x", js("execution.setVariable('partial', 1); order.id")))
    eng.deploy(process("p", service("A", "h", body=body)))
    inst = eng.start("p", {"order": None})
    assert inst.waiting_at == ["A"] and calls == []
    assert "partial" not in inst.variables  # a failed mapping sets nothing
    [job] = eng.jobs(inst.id)
    assert "element 'A': input parameter 'x': JavaScript failed: TypeError" in (
        job.last_error or ""
    )
    advance_and_run(clock, eng, 20)  # both retries, 10 s apart
    [incident] = eng.incidents(inst.id)
    assert incident.activity_id == "A" and "input parameter 'x'" in incident.message
    assert eng.get_instance(inst.id).state == "incident"


# -- deploy-time refusals ----------------------------------------------------------------------


def test_groovy_is_still_refused_at_deploy_naming_the_element(eng: ProcessEngine) -> None:
    with pytest.raises(DeploymentError, match=r"element 'Groovy': script task in groovy"):
        eng.deploy(process("p", script_task("Groovy", "println 'hi'", fmt="groovy")))
    mapping = user("U", io(inp("x", js("1", fmt="groovy"))))
    with pytest.raises(DeploymentError, match=r"element 'U': a groovy script in a mapping"):
        eng.deploy(process("q", mapping))


def test_scripts_from_resources_are_refused(eng: ProcessEngine) -> None:
    task = '<bpmn:scriptTask id="Ext" scriptFormat="javascript" camunda:resource="calc.js" />'
    with pytest.raises(DeploymentError, match=r"element 'Ext': .*camunda:resource 'calc.js'"):
        eng.deploy(process("p", task))
    resource = '<camunda:script scriptFormat="javascript" resource="parse.js" />'
    with pytest.raises(DeploymentError, match=r"element 'U': a javascript script from resource"):
        eng.deploy(process("q", user("U", io(out("x", resource)))))


def test_python_result_variable_is_refused_rather_than_ignored(eng: ProcessEngine) -> None:
    task = script_task("Py", "x = 1", fmt="python", attrs='camunda:resultVariable="r"')
    with pytest.raises(DeploymentError, match=r"element 'Py': camunda:resultVariable"):
        eng.deploy(process("p", task))


# -- the sandbox -------------------------------------------------------------------------------


def test_sandbox_has_no_io_and_no_java() -> None:
    run = javascript.run
    names = "[typeof require, typeof std, typeof os, typeof print, typeof fetch, typeof console]"
    assert run(names, {}, javascript.Execution(), where="t").value == ["undefined"] * 6
    with pytest.raises(ExpressionError, match=r"^t: JavaScript failed: ReferenceError.*Java"):
        run("Java.type('java.lang.System')", {}, javascript.Execution(), where="t")


def test_sandbox_values_cross_as_json() -> None:
    outcome = javascript.run(
        "execution.setVariable('a', {n: 1.5, s: 'x', l: [true, null]}); undefined",
        {"v": {"deep": [1, {"k": "v"}]}},
        javascript.Execution(),
        where="t",
    )
    assert outcome.value is None and outcome.writes == {
        "a": {"n": 1.5, "s": "x", "l": [True, None]}
    }
    with pytest.raises(ExpressionError, match=r"the script's value is a Date object"):
        javascript.run("new Date()", {}, javascript.Execution(), where="t")
    with pytest.raises(ExpressionError, match=r"variable 'n' \(at n.a\[1\]\) is NaN"):
        javascript.run(
            "execution.setVariable('n', {a: [1, NaN]})", {}, javascript.Execution(), where="t"
        )
    # Without want_value the value is not converted (a script task without resultVariable).
    assert (
        javascript.run("new Date()", {}, javascript.Execution(), where="t", want_value=False).value
        is None
    )
