"""Large models deploy and run: no RecursionError from SpiffWorkflow's recursive parser and task
tree below the documented size limit (engine.core.deep_stack.MAX_FLOW_NODES; issue 19)."""

from __future__ import annotations

import itertools
import sys

import pytest

from engine import DeploymentError, ProcessEngine
from engine.core import deep_stack
from tests.conftest import EngineFactory
from tests.test_core import table_counts

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def chain(tasks: int, first: str = "userTask") -> bytes:
    """start -> first (a wait state) -> tasks-1 none throw events (pass-through) -> end."""
    ids = ["s", *(f"t{i}" for i in range(tasks)), "e"]
    nodes = ['<bpmn:startEvent id="s"/>', f'<bpmn:{first} id="t0"/>']
    nodes += [f'<bpmn:intermediateThrowEvent id="t{i}"/>' for i in range(1, tasks)]
    nodes.append('<bpmn:endEvent id="e"/>')
    flows = [
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>'
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    ]
    return (
        f'<bpmn:definitions xmlns:bpmn="{BPMN}" id="d">'
        '<bpmn:process id="chain" isExecutable="true">'
        + "".join(nodes)
        + "".join(flows)
        + "</bpmn:process></bpmn:definitions>"
    ).encode()


def test_a_long_chain_deploys_and_starts_on_every_node(make_engine: EngineFactory) -> None:
    eng = make_engine()
    limit = sys.getrecursionlimit()
    dep = eng.deploy(chain(2_000))  # four times what SpiffWorkflow's recursion allowed
    assert dep.process_keys == ("chain",)
    assert sys.getrecursionlimit() == limit  # raised while parsing only
    inst = eng.start("chain")
    assert inst.waiting_at == ["t0"]
    # Another node re-parses the model from the stored source and loads the instance.
    other = make_engine()
    assert other.get_instance(inst.id).waiting_at == ["t0"]
    assert other.start("chain").waiting_at == ["t0"]


@pytest.mark.slow  # SpiffWorkflow walks the whole task tree per step: ~20 s for 1,010 nodes
def test_every_node_of_a_chain_deeper_than_1000_runs() -> None:
    """SpiffWorkflow's task iterator stopped 1,000 levels down: the instance ended as completed
    with the rest of the chain never run (engine.bpmn.task_tree lifts that depth). In memory
    only: the task tree, not the database, is under test."""
    eng = ProcessEngine("sqlite://")
    eng.deploy(chain(1_010))
    inst = eng.start("chain")
    done = eng.complete_task(inst.id, "t0")
    assert done.state == "completed"
    history = eng.history(inst.id)
    assert len(history) == 1_012
    assert history[-1].activity_id == "e"


def test_a_model_over_the_size_limit_is_refused(eng: ProcessEngine) -> None:
    before = table_counts(eng)
    with pytest.raises(DeploymentError, match=r"flow nodes is over the limit of 20000"):
        eng.deploy(chain(deep_stack.MAX_FLOW_NODES))
    assert table_counts(eng) == before


def test_errors_inside_the_deep_stack_reach_the_caller() -> None:
    with pytest.raises(ZeroDivisionError):
        deep_stack.run(lambda: 1 // 0, 10_000)
    assert deep_stack.run(lambda: "ok", 10_000) == "ok"
