"""Business rule tasks with camunda:decisionRef evaluate a deployed DMN decision table."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import DeploymentError, HandlerError, ProcessEngine
from tests.test_core import table_counts

DMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="defs" name="Dishes"
    namespace="http://camunda.org/schema/1.0/dmn">
  <decision id="dish" name="Dish">
    <decisionTable id="table" hitPolicy="{hit}">
      <input id="in1" label="Season">
        <inputExpression id="ie1" typeRef="string"><text>season</text></inputExpression>
      </input>
      <input id="in2" label="Guests">
        <inputExpression id="ie2" typeRef="integer"><text>guests</text></inputExpression>
      </input>
      <output id="out1" label="Dish" name="dish" typeRef="string"/>
      {second_output}
      <rule id="r1">
        <inputEntry id="r1a"><text>"Winter"</text></inputEntry>
        <inputEntry id="r1b"><text>&lt;= 8</text></inputEntry>
        <outputEntry id="r1c"><text>"Roastbeef"</text></outputEntry>
        {second_entry}
      </rule>
      <rule id="r2">
        <inputEntry id="r2a"><text>"Winter"</text></inputEntry>
        <inputEntry id="r2b"><text></text></inputEntry>
        <outputEntry id="r2c"><text>"Stew"</text></outputEntry>
        {second_entry}
      </rule>
      <rule id="r3">
        <inputEntry id="r3a"><text>"Summer"</text></inputEntry>
        <inputEntry id="r3b"><text></text></inputEntry>
        <outputEntry id="r3c"><text>"Salad"</text></outputEntry>
        {second_entry}
      </rule>
    </decisionTable>
  </decision>
</definitions>
"""

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t">
  <bpmn:process id="dinner" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide"/>
    <bpmn:businessRuleTask id="decide" camunda:decisionRef="{ref}" {attrs}/>
    <bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _files(
    tmp_path: Path,
    attrs: str,
    *,
    ref: str = "dish",
    hit: str = "FIRST",
    two_outputs: bool = False,
) -> list[Path]:
    bpmn = tmp_path / "dinner.bpmn"
    bpmn.write_text(BPMN.format(ref=ref, attrs=attrs))
    dmn = tmp_path / "dish.dmn"
    dmn.write_text(
        DMN.format(
            hit=hit,
            second_output='<output id="out2" label="Drink" name="drink" typeRef="string"/>'
            if two_outputs
            else "",
            second_entry='<outputEntry id="{}"><text>"Water"</text></outputEntry>'
            if two_outputs
            else "",
        ).replace('id="{}"', 'id="drinkEntry"')
    )
    return [bpmn, dmn]


@pytest.mark.parametrize(
    ("attrs", "hit", "variables", "expected"),
    [
        (
            'camunda:resultVariable="menu"',
            "COLLECT",
            {"season": "Winter", "guests": 4},
            [{"dish": "Roastbeef"}, {"dish": "Stew"}],
        ),
        (
            'camunda:resultVariable="menu" camunda:mapDecisionResult="collectEntries"',
            "COLLECT",
            {"season": "Winter", "guests": 4},
            ["Roastbeef", "Stew"],
        ),
        (
            'camunda:resultVariable="menu" camunda:mapDecisionResult="singleEntry"',
            "FIRST",
            {"season": "Winter", "guests": 20},
            "Stew",
        ),
        (
            'camunda:resultVariable="menu" camunda:mapDecisionResult="singleResult"',
            "FIRST",
            {"season": "Summer", "guests": 2},
            {"dish": "Salad"},
        ),
        (
            'camunda:resultVariable="menu" camunda:mapDecisionResult="singleEntry"',
            "FIRST",
            {"season": "Autumn", "guests": 2},
            None,
        ),
    ],
)
def test_the_decision_result_is_stored_as_camunda_maps_it(
    eng: ProcessEngine,
    tmp_path: Path,
    attrs: str,
    hit: str,
    variables: dict[str, object],
    expected: object,
) -> None:
    eng.deploy(_files(tmp_path, attrs, hit=hit))
    inst = eng.start("dinner", variables)
    assert inst.state == "completed"
    assert eng.get_instance(inst.id).variables["menu"] == expected


def test_without_result_variable_the_matched_outputs_become_variables(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    eng.deploy(_files(tmp_path, "", two_outputs=True))
    inst = eng.start("dinner", {"season": "Summer", "guests": 3})
    assert inst.variables["dish"] == "Salad"
    assert inst.variables["drink"] == "Water"


def test_single_entry_of_several_matched_rules_fails_the_call_and_stores_nothing(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    eng.deploy(
        _files(
            tmp_path,
            'camunda:resultVariable="menu" camunda:mapDecisionResult="singleEntry"',
            hit="COLLECT",
        )
    )
    before = table_counts(eng)
    with pytest.raises(HandlerError, match="decide.*at most one matched rule, got 2"):
        eng.start("dinner", {"season": "Winter", "guests": 4})
    assert table_counts(eng) == before


def test_a_missing_decision_is_a_deployment_error_naming_file_task_and_decision(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    files = _files(tmp_path, 'camunda:resultVariable="menu"', ref="drinks")
    before = table_counts(eng)
    with pytest.raises(DeploymentError) as info:
        eng.deploy(files)
    message = str(info.value)
    assert "dinner.bpmn" in message
    assert "decide" in message
    assert "'drinks' names no deployed decision (available: dish)" in message
    with pytest.raises(DeploymentError, match="available: none"):
        eng.deploy(files[0])
    assert table_counts(eng) == before


def test_an_unknown_map_decision_result_is_refused_at_deploy(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    with pytest.raises(DeploymentError, match="decide.*mapDecisionResult 'firstRow'"):
        eng.deploy(_files(tmp_path, 'camunda:mapDecisionResult="firstRow"'))


def test_a_business_rule_task_without_decision_ref_calls_its_handler(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    bpmn = tmp_path / "rules.bpmn"
    bpmn.write_text(BPMN.replace('camunda:decisionRef="{ref}" {attrs}', 'camunda:class="pickDish"'))
    eng.register_handler("pickDish", lambda ctx: {"dish": "Soup"})
    eng.deploy(bpmn)
    inst = eng.start("dinner")
    assert inst.state == "completed"
    assert inst.variables["dish"] == "Soup"


# -- Camunda's invoice example: a decision requirements graph with FEEL entries ---------------

INVOICE_DMN = Path(__file__).parent / "bpmn" / "dmn" / "invoiceBusinessDecisions.dmn"


@pytest.mark.parametrize(
    ("amount", "category", "groups"),
    [
        (30, "Misc", ["accounting", "sales"]),
        (250, "Misc", ["management"]),
        (1000, "Misc", ["management"]),
        (1500, "Misc", ["management"]),
        (1500, "Travel Expenses", ["accounting", "sales"]),
        (100, "Software License Costs", ["management"]),
    ],
)
def test_camundas_invoice_decisions_assign_the_approvers(
    eng: ProcessEngine, tmp_path: Path, amount: int, category: str, groups: list[str]
) -> None:
    bpmn = tmp_path / "assign.bpmn"
    bpmn.write_text(
        BPMN.format(
            ref="invoice-assign-approver",
            attrs='camunda:resultVariable="approverGroups" '
            'camunda:mapDecisionResult="collectEntries"',
        )
    )
    eng.deploy([bpmn, INVOICE_DMN])
    inst = eng.start("dinner", {"amount": amount, "invoiceCategory": category})
    assert inst.variables["approverGroups"] == groups
    # The required decision's output is an input of the dependent one, not a process variable.
    assert "invoiceClassification" not in inst.variables


def _table(hit: str, rules: list[tuple[str, str]], aggregation: str = "") -> str:
    agg = f' aggregation="{aggregation}"' if aggregation else ""
    rows = "".join(
        f'<rule id="r{i}"><inputEntry id="i{i}"><text>{test}</text></inputEntry>'
        f'<outputEntry id="o{i}"><text>{out}</text></outputEntry></rule>'
        for i, (test, out) in enumerate(rules)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="D" namespace="x">
  <decision id="dish" name="Dish">
    <decisionTable id="t" hitPolicy="{hit}"{agg}>
      <input id="in" label="Guests">
        <inputExpression id="e"><text>guests</text></inputExpression>
      </input>
      <output id="out" label="Score" name="score"/>
      {rows}
    </decisionTable>
  </decision>
</definitions>"""


def _deploy_table(eng: ProcessEngine, tmp_path: Path, dmn: str, attrs: str) -> None:
    bpmn = tmp_path / "dinner.bpmn"
    bpmn.write_text(BPMN.format(ref="dish", attrs=attrs))
    (tmp_path / "dish.dmn").write_text(dmn)
    eng.deploy([bpmn, tmp_path / "dish.dmn"])


@pytest.mark.parametrize(
    ("aggregation", "expected"), [("SUM", 6), ("MIN", 1), ("MAX", 3), ("COUNT", 3)]
)
def test_collect_aggregates_the_single_output(
    eng: ProcessEngine, tmp_path: Path, aggregation: str, expected: int
) -> None:
    rules = [("&gt; 0", "1"), ("&gt; 1", "2"), ("&gt; 2", "3"), ("&gt; 100", "4")]
    dmn = _table("COLLECT", rules, aggregation)
    _deploy_table(
        eng, tmp_path, dmn, 'camunda:resultVariable="s" camunda:mapDecisionResult="singleEntry"'
    )
    assert eng.start("dinner", {"guests": 5}).variables["s"] == expected


def test_unique_with_two_matching_rules_fails_naming_them(
    eng: ProcessEngine, tmp_path: Path
) -> None:
    dmn = _table("UNIQUE", [("&gt; 0", "1"), ("[1..10]", "2")])
    _deploy_table(eng, tmp_path, dmn, 'camunda:resultVariable="s"')
    with pytest.raises(HandlerError, match="hit policy UNIQUE, but rules r0, r1 all match"):
        eng.start("dinner", {"guests": 5})
    assert eng.start("dinner", {"guests": 50}).variables["s"] == [{"score": 1}]


def test_any_requires_the_matching_rules_to_agree(eng: ProcessEngine, tmp_path: Path) -> None:
    dmn = _table("ANY", [("&gt; 0", "1"), ("&lt; 10", "1"), ("&gt; 20", "2")])
    _deploy_table(eng, tmp_path, dmn, 'camunda:resultVariable="s"')
    assert eng.start("dinner", {"guests": 5}).variables["s"] == [{"score": 1}]
    with pytest.raises(HandlerError, match="hit policy ANY"):
        eng.start("dinner", {"guests": 30})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_table("PRIORITY", [("-", "1")]), "hit policy PRIORITY is not supported"),
        (_table("FIRST", [("-", "1")], "SUM"), "aggregation SUM needs hit policy COLLECT"),
    ],
)
def test_what_camunda_7_cannot_evaluate_is_refused_at_deploy(
    eng: ProcessEngine, tmp_path: Path, table: str, message: str
) -> None:
    with pytest.raises(DeploymentError, match=message):
        _deploy_table(eng, tmp_path, table, 'camunda:resultVariable="s"')


def test_a_missing_required_decision_is_named(eng: ProcessEngine, tmp_path: Path) -> None:
    dmn = _table("FIRST", [("-", "1")]).replace(
        '<decisionTable id="t"',
        '<informationRequirement id="ir"><requiredDecision href="#season" />'
        '</informationRequirement><decisionTable id="t"',
    )
    with pytest.raises(DeploymentError, match="decision 'season' \\(required by 'dish'\\)"):
        _deploy_table(eng, tmp_path, dmn, 'camunda:resultVariable="s"')
