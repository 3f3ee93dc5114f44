"""Business rule tasks that evaluate a DMN decision, as Camunda 7 evaluates and stores it.

SpiffWorkflow parses decision tables; evaluation is ours, because SpiffWorkflow's rewrites
FEEL entries into Python text, knows one decision per file and two hit policies. Here:

- **Files**: a DMN file may hold several decisions (a decision requirements graph); each is
  deployed under its id (``split``).
- **Rules**: input expressions and output entries are JUEL, Camunda's default, evaluated by
  ``engine.expressions.juel``; input entries are FEEL unary tests (``unary_test``): ``-`` or empty
  (any), a value (equality), comparisons ``< 250``, ranges ``[250..1000]``, lists
  ``"a","b"`` (any of them), ``not(...)`` and expressions using ``?`` for the input.
- **Hit policies** as in Camunda 7: UNIQUE (more than one match is an error), FIRST, ANY (the
  matches must agree), RULE ORDER, COLLECT with or without an aggregation (SUM, MIN, MAX,
  COUNT over the single output). PRIORITY and OUTPUT ORDER, which Camunda 7 does not support
  either, are refused at deploy.
- **Required decisions** are evaluated first; their outputs are variables of the dependent
  decision (one matched rule: its values; several: a list of values per output name).
- **Result**: in ``camunda:resultVariable``, shaped by ``camunda:mapDecisionResult``:
  ``resultList`` (default: one dict per matched rule), ``singleResult`` (one dict or None),
  ``singleEntry`` (one value or None) or ``collectEntries`` (the list of the single output's
  values). Without ``resultVariable`` the outputs become process variables (one matched rule:
  its values; several: a list per output name), SpiffWorkflow's behaviour; Camunda would keep
  them for output mappings only.
- A business rule task without ``camunda:decisionRef`` is service-like (``engine.deploy.parser``);
  a decisionRef naming no deployed decision is a deployment error naming the file, the task and
  the decisions available.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Final

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.camunda.parser.task_spec import BusinessRuleTaskParser
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.bpmn import scripting
from engine.bpmn.namespaces import camunda
from engine.core.errors import ExpressionError
from engine.expressions import feel

#: camunda:mapDecisionResult values (Camunda 7's names).
MAPPINGS: Final = frozenset(
    {"resultList", "singleResult", "singleEntry", "collectEntries", "zeebe"}
)
HIT_POLICIES: Final = frozenset({"UNIQUE", "FIRST", "ANY", "RULE ORDER", "COLLECT"})
AGGREGATIONS: Final = frozenset({"SUM", "MIN", "MAX", "COUNT"})
#: FEEL's name for the input value inside a unary test.
INPUT: Final = "?"


def decision_ref(node: etree._Element) -> str | None:
    """The decision a business rule task evaluates, if it names one."""
    ref = node.get(camunda("decisionRef"))
    return ref.strip() if ref and ref.strip() else None


def split(root: etree._Element) -> list[etree._Element]:
    """One document per decision of a DMN document (SpiffWorkflow reads one per document)."""
    decisions = [
        c for c in root if isinstance(c.tag, str) and etree.QName(c).localname == "decision"
    ]
    if len(decisions) <= 1:
        return [root]
    documents = []
    for keep in range(len(decisions)):
        doc = copy.deepcopy(root)
        for i, other in enumerate(
            c
            for c in list(doc)
            if isinstance(c.tag, str) and etree.QName(c).localname == "decision"
        ):
            if i != keep:
                doc.remove(other)
        documents.append(doc)
    return documents


# -- evaluation ---------------------------------------------------------------------------


@dataclass
class Decision:
    """A parsed decision table with what Camunda evaluates around it."""

    id: str
    table: Any  # SpiffWorkflow's DecisionTable: inputs, outputs, rules
    hit_policy: str
    aggregation: str | None = None
    required: list[Decision] = field(default_factory=list)

    def evaluate(self, variables: dict[str, Any]) -> list[dict[str, Any]]:
        """The output rows of the matched rules, after the hit policy."""
        scope = dict(variables)
        for req in self.required:
            scope.update(_as_variables(req.evaluate(scope)))
        where = f"decision '{self.id}'"
        matched = [rule for rule in self.table.rules if self._matches(rule, scope, where)]
        rows = [self._outputs(rule, scope, where) for rule in matched]
        policy = self.hit_policy
        if policy == "UNIQUE" and len(rows) > 1:
            ids = ", ".join(r.id for r in matched)
            raise ExpressionError(f"{where}: hit policy UNIQUE, but rules {ids} all match")
        if policy == "FIRST":
            return rows[:1]
        if policy == "ANY":
            if any(row != rows[0] for row in rows[1:]):
                raise ExpressionError(f"{where}: hit policy ANY, but the matching rules differ")
            return rows[:1]
        if self.aggregation:
            return [self._aggregate(rows, where)]
        return rows

    def _matches(self, rule: Any, scope: dict[str, Any], where: str) -> bool:
        for entry in rule.inputEntries:
            test = entry.lhs[0] if entry.lhs else None
            if test is None or not test.strip() or test.strip() == "-":
                continue
            expression = entry.input.expression
            if not expression:
                raise ExpressionError(f"{where}: input '{entry.input.label}' has no expression")
            value = _juel(expression, scope, f"{where}, input '{entry.input.label}'")
            if not unary_test(test, value, scope, f"{where}, rule '{rule.id}'"):
                return False
        return True

    @staticmethod
    def _outputs(rule: Any, scope: dict[str, Any], where: str) -> dict[str, Any]:
        row = {}
        for entry in rule.outputEntries:
            name = entry.output.name or entry.output.label
            text = getattr(entry, "text", None)
            row[name] = _juel(text, scope, f"{where}, rule '{rule.id}'") if text else None
        return row

    def _aggregate(self, rows: list[dict[str, Any]], where: str) -> dict[str, Any]:
        names = [o.name or o.label for o in self.table.outputs]
        if len(names) != 1:
            raise ExpressionError(f"{where}: aggregation {self.aggregation} needs one output")
        values = [row[names[0]] for row in rows if row[names[0]] is not None]
        if self.aggregation == "COUNT":
            return {names[0]: len(values)}
        if not values:
            return {names[0]: None}
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            raise ExpressionError(f"{where}: aggregation {self.aggregation} needs numbers")
        if self.aggregation == "SUM":
            return {names[0]: sum(values)}
        return {names[0]: min(values) if self.aggregation == "MIN" else max(values)}


def _juel(text: str, variables: dict[str, Any], where: str) -> Any:
    try:
        return scripting.evaluate_text(text, variables)
    except ExpressionError as exc:
        raise ExpressionError(f"{where}: {exc}") from None


def _as_variables(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if len(rows) == 1:
        return dict(rows[0])
    merged: dict[str, Any] = {}
    for row in rows:
        for name, value in row.items():
            merged.setdefault(name, []).append(value)
    return merged


def _split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split at ``sep`` outside quotes, brackets and parentheses."""
    parts, depth, quote, start = [], 0, False, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth <= 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def unary_test(text: str, value: Any, variables: dict[str, Any], where: str) -> bool:
    """Does ``value`` pass the FEEL unary test ``text`` (a DMN input entry)?"""
    text = text.strip()
    if text in ("", "-"):
        return True
    if text.startswith("not(") and text.endswith(")") and len(_split_top(text[3:])) == 1:
        return not unary_test(text[4:-1], value, variables, where)
    parts = _split_top(text)
    if len(parts) > 1:
        return any(unary_test(p, value, variables, where) for p in parts)
    scope = {**variables, INPUT: value}
    if text[:1] in "<>":
        expression = f"{INPUT} {text}"
    elif text[:1] in "[(]" and ".." in text:
        expression = f"{INPUT} in {text}"
    elif INPUT in text.replace('"?"', ""):
        expression = text
    else:
        expression = f"{INPUT} = ({text})"
    return feel.evaluate_condition(expression, scope, where)


class DecisionTask(BusinessRuleTask):  # type: ignore[misc]
    """A business rule task evaluating a DMN decision."""

    def __init__(
        self,
        wf_spec: Any,
        name: str,
        decision: Decision,
        result_variable: str | None = None,
        map_decision_result: str = "resultList",
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, name, dmnEngine=None, **kwargs)
        self.decision = decision
        self.result_variable = result_variable
        self.map_decision_result = map_decision_result

    def _run_hook(self, my_task: Any) -> bool:
        try:
            rows = self.decision.evaluate(dict(my_task.data))
            if self.result_variable:
                my_task.data[self.result_variable] = self._mapped(rows)
            else:
                my_task.data.update(_as_variables(rows) if rows else {})
        except SpiffWorkflowException as exc:
            exc.add_note(f"Business rule task '{self.bpmn_id}'.")
            raise
        except Exception as exc:
            raise WorkflowTaskException(str(exc), task=my_task, exception=exc) from exc
        return True

    def _mapped(self, rows: list[dict[str, Any]]) -> Any:
        how = self.map_decision_result
        if how == "resultList":
            return rows
        if how == "zeebe":  # zeebe:calledDecision: as Camunda 8 shapes a decision's result
            shaped = [next(iter(row.values())) if len(row) == 1 else row for row in rows]
            return shaped[0] if len(shaped) == 1 else (shaped or None)
        if how == "collectEntries":
            return [self._single_value(row) for row in rows]
        if len(rows) > 1:
            raise ExpressionError(
                f"mapDecisionResult '{how}' expects at most one matched rule, got {len(rows)}"
            )
        if not rows:
            return None
        return rows[0] if how == "singleResult" else self._single_value(rows[0])

    def _single_value(self, row: dict[str, Any]) -> Any:
        if len(row) != 1:
            raise ExpressionError(
                f"mapDecisionResult '{self.map_decision_result}' expects one output column, "
                f"the decision has {len(row)}"
            )
        return next(iter(row.values()))


class DecisionTaskParser(BusinessRuleTaskParser):  # type: ignore[misc]
    """Builds the decision (with its required decisions) at deploy time; whatever cannot be
    evaluated is a ValidationException with the node, reported with the file."""

    def create_task(self) -> DecisionTask:
        how = (self.node.get(camunda("mapDecisionResult")) or "resultList").strip()
        if how not in MAPPINGS:
            self.raise_validation_exception(
                f"camunda:mapDecisionResult '{how}' is not one of {', '.join(sorted(MAPPINGS))}"
            )
        result_variable = (self.node.get(camunda("resultVariable")) or "").strip()
        return DecisionTask(
            self.spec,
            self.bpmn_id,
            decision=self._decision(str(decision_ref(self.node)), ()),
            result_variable=result_variable or None,
            map_decision_result=how,
            **self.bpmn_attributes,
        )

    def _decision(self, ref: str, path: tuple[str, ...]) -> Decision:
        available = self.process_parser.parser.dmn_parsers
        if ref not in available:
            what = f"decision '{ref}' (required by '{path[-1]}')" if path else f"'{ref}'"
            self.raise_validation_exception(
                f"camunda:decisionRef {what} names no deployed decision (available: "
                f"{', '.join(sorted(available)) or 'none'}); deploy the .dmn file with the process"
            )
        if ref in path:
            self.raise_validation_exception(
                f"decisions {' -> '.join((*path, ref))} require each other in a cycle"
            )
        dmn = available[ref]
        dmn.parse()
        tables = dmn.xpath(".//dmn:decisionTable")
        if not dmn.decision.decisionTables or not tables:
            self.raise_validation_exception(
                f"decision '{ref}' has no decision table (literal expressions are not supported)"
            )
        policy = (tables[0].get("hitPolicy") or "UNIQUE").strip().upper()
        aggregation = (tables[0].get("aggregation") or "").strip().upper() or None
        if policy not in HIT_POLICIES:
            self.raise_validation_exception(
                f"decision '{ref}': hit policy {policy} is not supported (Camunda 7 supports "
                "UNIQUE, FIRST, ANY, RULE ORDER and COLLECT; so does Spillway)"
            )
        if aggregation and (policy != "COLLECT" or aggregation not in AGGREGATIONS):
            self.raise_validation_exception(
                f"decision '{ref}': aggregation {aggregation} needs hit policy COLLECT and one "
                f"of {', '.join(sorted(AGGREGATIONS))}"
            )
        required = [
            self._decision(str(r.get("href") or "").lstrip("#"), (*path, ref))
            for r in dmn.xpath(".//dmn:requiredDecision")
        ]
        return Decision(ref, dmn.decision.decisionTables[0], policy, aggregation, required)
