"""Expressions in Camunda's attributes: a delegate expression picks the handler, a topic
expression the external task's topic."""

from __future__ import annotations

import pytest

from engine import ExpressionError, ProcessEngine
from engine.testing import ManualClock, assert_that
from tests.bpmnbuild import process
from tests.test_core import table_counts


def test_a_delegate_expression_names_the_handler_to_call(eng: ProcessEngine) -> None:
    eng.register_handler("autoApprove", lambda ctx: {"by": "bot"})
    eng.register_handler("askBoss", lambda ctx: {"by": "boss"})
    task = (
        '<bpmn:serviceTask id="Approve" '
        "camunda:delegateExpression=\"${amount &lt; 100 ? 'autoApprove' : 'askBoss'}\" />"
    )
    eng.deploy(process("p", task))
    assert eng.start("p", {"amount": 50}).variables["by"] == "bot"
    assert eng.start("p", {"amount": 500}).variables["by"] == "boss"


def test_a_delegate_expression_that_names_nothing_is_a_technical_failure(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    task = '<bpmn:serviceTask id="Call" camunda:delegateExpression="#{beans.lookup(kind)}" />'
    eng.deploy(process("p", task))
    inst = eng.start("p", {"kind": "x"})
    assert_that(inst, engine=eng).is_waiting_at("Call")
    [job] = eng.jobs(inst.id)
    assert "element 'Call': camunda:delegateExpression #{beans.lookup(kind)}" in (
        job.last_error or ""
    )


def test_a_topic_expression_gives_the_external_tasks_topic(eng: ProcessEngine) -> None:
    task = (
        '<bpmn:serviceTask id="Bill" camunda:type="external" camunda:topic="${region}-billing" />'
    )
    eng.deploy(process("p", task))
    eng.start("p", {"region": "eu"})
    [ext] = eng.external_tasks.list()
    assert ext.topic == "eu-billing"
    assert eng.external_tasks.fetch_and_lock("w", ["eu-billing"])


def test_a_topic_expression_without_its_variable_fails_the_call(eng: ProcessEngine) -> None:
    task = '<bpmn:serviceTask id="Bill" camunda:type="external" camunda:topic="${region}" />'
    eng.deploy(process("p", task))
    before = table_counts(eng)
    with pytest.raises(ExpressionError, match="element 'Bill': camunda:topic"):
        eng.start("p")
    assert table_counts(eng) == before
