"""A drawn cycle whose condition never turns false fails the call instead of running forever."""

from __future__ import annotations

import pytest

from engine import EngineError, ProcessEngine
from engine.core.errors import CycleLimitExceeded

CYCLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="cycle" isExecutable="true">
    <bpmn:startEvent id="s" />
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="Work" />
    <bpmn:serviceTask id="Work" camunda:class="count" />
    <bpmn:sequenceFlow id="f1" sourceRef="Work" targetRef="g" />
    <bpmn:exclusiveGateway id="g" default="out" />
    <bpmn:sequenceFlow id="out" sourceRef="g" targetRef="e" />
    <bpmn:sequenceFlow id="back" sourceRef="g" targetRef="Work">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${n != limit}
      </bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:endEvent id="e" />
  </bpmn:process>
</bpmn:definitions>
"""


def engine(url: str) -> ProcessEngine:
    eng = ProcessEngine(url, max_loop_iterations=20)
    eng.register_handler("count", lambda ctx: {"n": ctx.variables["n"] + 1})
    eng.deploy(CYCLE)
    return eng


def test_a_cycle_that_ends_runs_to_the_end(db_url: str) -> None:
    eng = engine(db_url)
    inst = eng.start("cycle", variables={"n": 0, "limit": 15})
    assert inst.state == "completed" and inst.variables["n"] == 15
    eng.close()


def test_a_cycle_that_never_ends_fails_the_call_and_commits_nothing(db_url: str) -> None:
    eng = engine(db_url)
    with pytest.raises(CycleLimitExceeded, match="Work: ran 21 times") as raised:
        eng.start("cycle", variables={"n": 0, "limit": -1}, business_key="loop-1")
    assert isinstance(raised.value, EngineError)
    assert eng.instances(business_key="loop-1") == []
    eng.close()
