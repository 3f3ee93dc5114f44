"""Path coverage read from an engine's database: which flow nodes and sequence flows a suite's
instances took, exactly at gateways, joins, boundary and event-based gateways, subprocesses and
call activities (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.testing import ManualClock, advance_and_run
from engine.testing.coverage import CoverageCollector, CoverageData
from engine.testing.coverage_report import (
    ProcessCoverage,
    summarize,
    terminal_lines,
    total_percent,
    write_html,
)
from processes import order_handlers
from tests.bpmnbuild import NS, process, service, user
from tests.conftest import EXAMPLES

HOUR = 3600


def coverage(*engines: ProcessEngine) -> dict[str, ProcessCoverage]:
    collector = CoverageCollector()
    for eng in engines:
        collector.collect(eng)
    assert collector.data.errors == []
    return {p.label: p for p in summarize(collector.data)}


def missed(p: ProcessCoverage) -> set[str]:
    return set(p.missed_nodes) | set(p.missed_flows)


@pytest.fixture
def order(eng: ProcessEngine) -> ProcessEngine:
    order_handlers.register(eng)
    eng.deploy(str(EXAMPLES / "order.bpmn"))
    return eng


def test_a_process_nobody_started_is_deployed_at_zero(order: ProcessEngine) -> None:
    [p] = coverage(order).values()
    assert (p.key, p.instances, p.taken, p.total) == ("order", 0, 0, 21)
    assert p.resource.endswith("order.bpmn")
    assert p.percent == 0.0


def test_an_exclusive_gateway_branch_never_taken_is_named(order: ProcessEngine) -> None:
    order.start("order", {"amount": 30, "card": "4111"})
    p = coverage(order)["order"]
    assert p.instances == 1
    assert missed(p) == {
        "ApproveOrder",
        "Flow_Large",
        "Flow_Approved",
        "Event_CardDeclined",
        "Flow_Declined",
        "Task_NotifyDeclined",
        "Flow_6",
        "EndEvent_Declined",
    }
    # The other branch, and the error boundary, complete it.
    order.start("order", {"amount": 30, "card": "4110"})
    inst = order.start("order", {"amount": 5000, "card": "4111"})
    assert missed(coverage(order)["order"]) == {"Flow_Approved"}  # ApproveOrder still waits
    order.complete_task(inst.id, "ApproveOrder")
    p = coverage(order)["order"]
    assert (missed(p), p.instances, p.percent) == (set(), 3, 100.0)


def test_each_branch_into_a_parallel_join_is_its_own_flow(eng: ProcessEngine) -> None:
    eng.register_handler("h", lambda ctx: None)
    eng.deploy(
        process(
            "par",
            '<bpmn:parallelGateway id="Split"/>',
            user("A"),
            service("B", handler="h"),
            '<bpmn:parallelGateway id="Join"/>',
            flows=[
                ("StartEvent_1", "Split"),
                ("Split", "A"),
                ("Split", "B"),
                ("A", "Join"),
                ("B", "Join"),
                ("Join", "EndEvent_1"),
            ],
        )
    )
    inst = eng.start("par")
    # B arrived at the join and waits there; A's flow into it is not taken yet.
    assert missed(coverage(eng)["par"]) == {"Flow_3", "Flow_5", "EndEvent_1"}
    eng.complete_task(inst.id, "A")
    assert missed(coverage(eng)["par"]) == set()


def test_an_inclusive_gateway_takes_only_the_flows_whose_condition_held(
    eng: ProcessEngine,
) -> None:
    eng.register_handler("h", lambda ctx: None)
    eng.deploy(
        process(
            "inc",
            '<bpmn:inclusiveGateway id="Fork"/>',
            service("I1", handler="h"),
            service("I2", handler="h"),
            service("I3", handler="h"),
            '<bpmn:inclusiveGateway id="Merge"/>',
            flows=[
                ("StartEvent_1", "Fork"),
                ("Fork", "I1", "x > 0"),
                ("Fork", "I2", "x > 1"),
                ("Fork", "I3", "x > 5"),
                ("I1", "Merge"),
                ("I2", "Merge"),
                ("I3", "Merge"),
                ("Merge", "EndEvent_1"),
            ],
        )
    )
    eng.start("inc", {"x": 3})
    assert missed(coverage(eng)["inc"]) == {"I3", "Flow_3", "Flow_6"}


RACE = process(
    "race",
    '<bpmn:eventBasedGateway id="Race" />',
    '<bpmn:intermediateCatchEvent id="Timeout"><bpmn:timerEventDefinition>'
    "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
    "</bpmn:intermediateCatchEvent>",
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


def test_an_event_based_gateway_takes_the_flow_of_the_event_that_fired(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(RACE)
    eng.start("race")
    waiting = coverage(eng)["race"]
    assert waiting.nodes_taken == {"StartEvent_1", "Race"}
    assert waiting.flows_taken == {"Flow_0"}
    advance_and_run(clock, eng, HOUR)
    fired = coverage(eng)["race"]
    assert missed(fired) == {"Paid", "EndEvent_1", "Flow_2", "Flow_4", "Flow_5"}


TIMED_SUB = process(
    "sub",
    '<bpmn:subProcess id="Sub"><bpmn:startEvent id="SS"/><bpmn:userTask id="SU"/>'
    '<bpmn:endEvent id="SE"/><bpmn:sequenceFlow id="s1" sourceRef="SS" targetRef="SU"/>'
    '<bpmn:sequenceFlow id="s2" sourceRef="SU" targetRef="SE"/></bpmn:subProcess>',
    '<bpmn:boundaryEvent id="Late" attachedToRef="Sub"><bpmn:timerEventDefinition>'
    "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>",
    '<bpmn:endEvent id="TooLate"/>',
    flows=[("StartEvent_1", "Sub"), ("Sub", "EndEvent_1"), ("Late", "TooLate")],
)


def test_a_boundary_event_counts_when_it_fires_not_while_it_listens(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    eng.deploy(TIMED_SUB)
    eng.start("sub")
    assert missed(coverage(eng)["sub"]) == {
        "SE",
        "s2",
        "Late",
        "TooLate",
        "Flow_1",
        "Flow_2",
        "EndEvent_1",
    }
    advance_and_run(clock, eng, HOUR)  # the timer interrupts the subprocess
    assert missed(coverage(eng)["sub"]) == {"SE", "s2", "Flow_1", "EndEvent_1"}


CALLS = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="t">
<bpmn:process id="child" isExecutable="true"><bpmn:startEvent id="Start_C"/>
<bpmn:userTask id="Work"/><bpmn:endEvent id="End_C"/>
<bpmn:sequenceFlow id="c1" sourceRef="Start_C" targetRef="Work"/>
<bpmn:sequenceFlow id="c2" sourceRef="Work" targetRef="End_C"/></bpmn:process>
<bpmn:process id="parent" isExecutable="true"><bpmn:startEvent id="Start_P"/>
<bpmn:callActivity id="Call" calledElement="child"/><bpmn:endEvent id="End_P"/>
<bpmn:sequenceFlow id="p1" sourceRef="Start_P" targetRef="Call"/>
<bpmn:sequenceFlow id="p2" sourceRef="Call" targetRef="End_P"/></bpmn:process>
</bpmn:definitions>""".encode()


def test_a_called_process_is_covered_under_its_own_key(eng: ProcessEngine) -> None:
    eng.deploy(CALLS)
    inst = eng.start("parent")
    found = coverage(eng)
    assert missed(found["parent"]) == {"p2", "End_P"}
    assert missed(found["child"]) == {"c2", "End_C"}
    assert (found["parent"].instances, found["child"].instances) == (1, 1)
    eng.complete_task(inst.id, "Work")
    assert {label: missed(p) for label, p in coverage(eng).items()} == {
        "child": set(),
        "parent": set(),
    }


def test_a_loop_passes_the_same_flows_again(eng: ProcessEngine) -> None:
    eng.register_handler("inc", lambda ctx: {"n": ctx.variables["n"] + 1})
    eng.deploy(
        process(
            "loop",
            service("Inc", handler="inc"),
            '<bpmn:exclusiveGateway id="More" default="Flow_3"/>',
            flows=[
                ("StartEvent_1", "Inc"),
                ("Inc", "More"),
                ("More", "Inc", "n < 3"),
                ("More", "EndEvent_1"),
            ],
        )
    )
    eng.start("loop", {"n": 0})
    assert missed(coverage(eng)["loop"]) == set()
    eng.start("loop", {"n": 5})  # one pass only: nothing new, nothing lost


def test_reading_again_skips_what_did_not_change(order: ProcessEngine) -> None:
    collector = CoverageCollector()
    inst = order.start("order", {"amount": 5000, "card": "4111"})
    collector.collect(order)
    collector.collect(order)
    [model] = collector.data.models.values()
    assert model.instances == 1
    assert "Task_Charge" not in model.nodes
    order.complete_task(inst.id, "ApproveOrder")
    collector.collect(order)
    assert model.instances == 1
    assert "Task_Charge" in model.nodes


def test_the_same_key_from_two_documents_is_reported_per_document(
    make_engine: object, tmp_path: Path
) -> None:
    one = ProcessEngine("sqlite://", clock=ManualClock())
    two = ProcessEngine("sqlite://", clock=ManualClock())
    with one, two:
        one.deploy(process("p", user("A")))
        two.deploy(process("p", user("A"), user("B")))
        two.start("p")
        found = coverage(one, two)
    assert len(found) == 2
    labels = sorted(found)
    assert all(re.fullmatch(r"p \(<bytes>, [0-9a-f]{8}\)", label) for label in labels)
    assert sorted((p.total, p.taken) for p in found.values()) == [(5, 0), (7, 3)]


def test_data_files_round_trip_and_merge(order: ProcessEngine, tmp_path: Path) -> None:
    first, second = CoverageCollector(), CoverageCollector()
    order.start("order", {"amount": 30, "card": "4111"})
    first.collect(order)
    order.start("order", {"amount": 30, "card": "4110"})
    second.collect(order)  # reads both instances
    first.data.dump(tmp_path / "gw0.json")
    second.data.dump(tmp_path / "gw1.json")
    assert json.loads((tmp_path / "gw0.json").read_text())["format"] == 1
    merged = CoverageData.load_all(tmp_path.glob("*.json"))
    [p] = summarize(merged)
    assert p.instances == 3
    assert missed(p) == {"ApproveOrder", "Flow_Large", "Flow_Approved"}


def test_an_unreadable_database_is_noted_not_raised(tmp_path: Path) -> None:
    collector = CoverageCollector()
    eng = ProcessEngine(f"sqlite:///{tmp_path / 'gone.db'}", clock=ManualClock())
    eng.close()
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").mkdir()  # not a database any more
    collector.collect(eng)
    assert len(collector.data.errors) == 1
    assert "gone.db" in collector.data.errors[0]


def test_the_terminal_summary_and_the_html_report(order: ProcessEngine, tmp_path: Path) -> None:
    order.start("order", {"amount": 30, "card": "4111"})
    processes = list(coverage(order).values())
    assert terminal_lines(processes, Path("cov/index.html")) == [
        "1 process: 13 of 21 flow nodes and sequence flows taken (61.9%)",
        "order: nodes 7/11 (63.6%), flows 6/10 (60.0%), 1 instance",
        "  nodes never taken: ApproveOrder, Event_CardDeclined, Task_NotifyDeclined, "
        "EndEvent_Declined",
        "  flows never taken: Flow_Large, Flow_Approved, Flow_Declined, Flow_6",
        "report: cov/index.html",
    ]
    assert round(total_percent(processes), 1) == 61.9
    index = write_html(processes, tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    assert 'href="order.html"' in index.read_text()
    page = (tmp_path / "report" / "order.html").read_text()
    # The viewer comes from beside the report, never from the network.
    assert re.findall(r'<script src="([^"]+)"', page) == [
        "assets/bpmn-navigated-viewer.production.min.js"
    ]
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for name in ("bpmn-navigated-viewer.production.min.js", "diagram-js.css", "bpmn-js.css"):
        assert (tmp_path / "report" / "assets" / name).stat().st_size > 1000
    payload = json.loads(
        re.search(r'<script type="application/json" id="coverage">(.*?)</script>', page, re.S)
        .group(1)  # type: ignore[union-attr]
        .replace("<\\/", "</")
    )
    assert payload["xml"] == (EXAMPLES / "order.bpmn").read_text()
    assert set(payload["missed"]) == missed(processes[0])
    assert "Flow_Small" in payload["taken"]
    assert "<code>Flow_Large</code></td><td>Gateway_Amount &rarr; ApproveOrder" in page


def test_an_event_subprocess_counts_when_its_event_fired(eng: ProcessEngine) -> None:
    from tests.test_event_subprocesses import ERROR_END, ON_ERROR, USER_THEN_END, document

    eng.register_handler("handle", lambda ctx: {"handled": True})
    eng.deploy(document(USER_THEN_END, ON_ERROR))
    inst = eng.start("p")
    eng.complete_task(inst.id, "Inner")
    eng.complete_task(inst.id, "After")
    quiet = coverage(eng)["p"]
    assert missed(quiet) == {"Handler", "Caught", "h1", "Handle", "h2", "Handled"}
    assert quiet.percent < 100

    fired = ProcessEngine("sqlite://", clock=ManualClock())
    with fired:
        fired.register_handler("handle", lambda ctx: {"handled": True})
        fired.deploy(document(ERROR_END, ON_ERROR))
        fired.start("p")
        p = coverage(fired)["p"]
    # The error ended the subprocess: Sub's outgoing flow and what follows were never taken.
    assert missed(p) == {"f3", "After", "f4", "Finish"}
