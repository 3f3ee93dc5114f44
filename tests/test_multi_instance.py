"""Multi-instance activities as Camunda Modeler and bpmn.io write them, on every kind of activity.

Camunda writes ``camunda:collection``/``camunda:elementVariable``; bpmn.io (and the BPMN
standard) ``loopDataInputRef``/``inputDataItem``. SpiffWorkflow's parsers each read only one of
the two, depending on the activity.
"""

from __future__ import annotations

import pytest

from engine import DeploymentError, HandlerError, ProcessEngine
from engine.core.errors import ExpressionError
from engine.testing import assert_that
from tests.bpmnbuild import process
from tests.test_core import table_counts


def camunda_mi(collection: str, *, sequential: bool = False) -> str:
    seq = ' isSequential="true"' if sequential else ""
    return (
        f'<bpmn:multiInstanceLoopCharacteristics{seq} camunda:collection="{collection}" '
        'camunda:elementVariable="item" />'
    )


STANDARD_MI = (
    "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopDataInputRef>items</bpmn:loopDataInputRef>"
    '<bpmn:inputDataItem id="item" name="item" /></bpmn:multiInstanceLoopCharacteristics>'
)


@pytest.mark.parametrize("collection", ["items", "${items}", "#{ items }"])
@pytest.mark.parametrize("sequential", [False, True])
def test_a_service_task_runs_once_per_element_of_a_camunda_collection(
    eng: ProcessEngine, collection: str, sequential: bool
) -> None:
    seen: list[object] = []
    eng.register_handler("each", lambda ctx: seen.append(ctx.variables["item"]))
    mi = camunda_mi(collection, sequential=sequential)
    eng.deploy(
        process("p", f'<bpmn:serviceTask id="Each" camunda:class="each">{mi}</bpmn:serviceTask>')
    )
    inst = eng.start("p", {"items": ["a", "b", "c"]})
    assert inst.state == "completed"
    assert sorted(map(str, seen)) == ["a", "b", "c"]
    assert "item" not in inst.variables  # each instance's own, as in Camunda


@pytest.mark.parametrize("loop", [camunda_mi("${items}"), STANDARD_MI])
def test_a_user_task_waits_once_per_element(eng: ProcessEngine, loop: str) -> None:
    eng.deploy(process("p", f'<bpmn:userTask id="Review">{loop}</bpmn:userTask>'))
    inst = eng.start("p", {"items": [1, 2]})
    assert_that(inst, engine=eng).is_waiting_at("Review")
    eng.complete_task(inst.id, "Review")
    assert_that(inst, engine=eng).is_active().is_waiting_at("Review")
    eng.complete_task(inst.id, "Review")
    assert_that(inst, engine=eng).is_completed()


@pytest.mark.parametrize("loop", [camunda_mi("items"), STANDARD_MI])
def test_an_embedded_subprocess_runs_once_per_element(eng: ProcessEngine, loop: str) -> None:
    seen: list[object] = []
    eng.register_handler("each", lambda ctx: seen.append(ctx.variables["item"]))
    sub = (
        f'<bpmn:subProcess id="Sub">{loop}<bpmn:startEvent id="S" />'
        '<bpmn:sequenceFlow id="s1" sourceRef="S" targetRef="Each" />'
        '<bpmn:serviceTask id="Each" camunda:class="each" />'
        '<bpmn:sequenceFlow id="s2" sourceRef="Each" targetRef="E" /><bpmn:endEvent id="E" />'
        "</bpmn:subProcess>"
    )
    eng.deploy(process("p", sub))
    assert eng.start("p", {"items": [10, 20, 30]}).state == "completed"
    assert sorted(seen) == [10, 20, 30]  # type: ignore[type-var]


@pytest.mark.parametrize("items", [None, 5])
def test_a_collection_that_is_not_a_list_fails_naming_the_task(
    eng: ProcessEngine, items: object
) -> None:
    eng.register_handler("each", lambda ctx: None)
    mi = camunda_mi("${items}")
    eng.deploy(
        process("p", f'<bpmn:serviceTask id="Each" camunda:class="each">{mi}</bpmn:serviceTask>')
    )
    before = table_counts(eng)
    variables = {} if items is None else {"items": items}
    with pytest.raises(HandlerError, match="at 'Each'.*collection 'items' must be a list"):
        eng.start("p", variables)
    assert table_counts(eng) == before


def test_a_collection_expression_is_evaluated_when_the_activity_starts(
    eng: ProcessEngine,
) -> None:
    seen: list[object] = []
    eng.register_handler("each", lambda ctx: seen.append(ctx.variables["item"]))
    mi = camunda_mi("${order.items}")
    eng.deploy(
        process("p", f'<bpmn:serviceTask id="Each" camunda:class="each">{mi}</bpmn:serviceTask>')
    )
    done = eng.start("p", {"order": {"items": ["a", "b"]}})
    assert done.state == "completed" and seen == ["a", "b"]
    assert not any(k.startswith("spillway") for k in done.variables)  # no bookkeeping leaks
    with pytest.raises(ExpressionError, match="element .Each..*must give a list"):
        eng.start("p", {"order": {"items": None}})


def test_a_collection_expression_that_does_not_parse_is_refused(eng: ProcessEngine) -> None:
    mi = camunda_mi("${order.items[}")
    with pytest.raises(DeploymentError, match="element 'Each': camunda:collection"):
        eng.deploy(process("p", f'<bpmn:userTask id="Each">{mi}</bpmn:userTask>'))


def test_completing_a_task_before_a_bad_collection_fails_naming_it(eng: ProcessEngine) -> None:
    # The failure happens inside SpiffWorkflow while complete_task() moves the token on, not
    # in a run's engine steps: it is named all the same, and nothing is stored.
    eng.register_handler("each", lambda ctx: None)
    mi = camunda_mi("${items}")
    eng.deploy(
        process(
            "p",
            '<bpmn:userTask id="Review" />',
            f'<bpmn:serviceTask id="Each" camunda:class="each">{mi}</bpmn:serviceTask>',
        )
    )
    inst = eng.start("p")
    before = table_counts(eng)
    with pytest.raises(HandlerError, match="at 'Each'.*collection 'items' must be a list"):
        eng.complete_task(inst.id, "Review", {"items": 5})
    assert table_counts(eng) == before
    assert_that(inst, engine=eng).is_waiting_exactly_at("Review")
