"""Business rule tasks that evaluate a DMN decision, as Camunda 7 stores their result.

SpiffWorkflow's DMN support parses decision tables and matches rules; two things differ from
what a Camunda model expects and are settled here:

- A business rule task without ``camunda:decisionRef`` made SpiffWorkflow's parser raise a raw
  ``KeyError`` (93 public files). Such a task is a service-like task (handler, topic or
  expression), parsed by ``engine.parser``; only tasks naming a decision get a decision spec.
  A decisionRef naming no deployed decision is a deployment error naming the file, the task
  and the decisions that are available.
- SpiffWorkflow merges the first matched rule's outputs into the process variables. Camunda
  stores the result in ``camunda:resultVariable``, shaped by ``camunda:mapDecisionResult``:
  ``resultList`` (default: a list of one dict per matched rule), ``singleResult`` (one dict
  or None), ``singleEntry`` (one value or None) or ``collectEntries`` (the list of the single
  output's values). With ``resultVariable`` that is what Spillway does; without it the outputs
  of the matched rule are merged into the variables, SpiffWorkflow's behaviour (Camunda would
  keep them only for output mappings).

Input and output entries are evaluated by the engine's safe expression evaluator: literals,
comparisons such as ``< 100``, ``-`` (any value) and SpiffWorkflow's ``?`` placeholder.
"""

from __future__ import annotations

from typing import Any, Final

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.camunda.parser.task_spec import BusinessRuleTaskParser
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.deep_merge import DeepMerge

CAMUNDA_NS: Final = "http://camunda.org/schema/1.0/bpmn"
#: camunda:mapDecisionResult values (Camunda 7's names).
MAPPINGS: Final = frozenset({"resultList", "singleResult", "singleEntry", "collectEntries"})


def decision_ref(node: etree._Element) -> str | None:
    """The decision a business rule task evaluates, if it names one."""
    ref = node.get(f"{{{CAMUNDA_NS}}}decisionRef")
    return ref.strip() if ref and ref.strip() else None


class DecisionTask(BusinessRuleTask):  # type: ignore[misc]
    """A business rule task evaluating a DMN decision table."""

    def __init__(
        self,
        wf_spec: Any,
        name: str,
        dmnEngine: Any,  # SpiffWorkflow's keyword: its serializer passes it
        result_variable: str | None = None,
        map_decision_result: str = "resultList",
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, name, dmnEngine=dmnEngine, **kwargs)
        self.result_variable = result_variable
        self.map_decision_result = map_decision_result

    def _run_hook(self, my_task: Any) -> bool:
        try:
            if self.result_variable:
                my_task.data[self.result_variable] = self._mapped(my_task)
            else:
                my_task.data = DeepMerge.merge(my_task.data, self.dmnEngine.result(my_task))
        except SpiffWorkflowException as exc:
            exc.add_note(f"Business rule task '{self.bpmn_id}'.")
            raise
        except Exception as exc:
            raise WorkflowTaskException(str(exc), task=my_task, exception=exc) from exc
        return True

    def _mapped(self, my_task: Any) -> Any:
        rows = [dict(rule.output_as_dict(my_task)) for rule in self.dmnEngine.decide(my_task)]
        how = self.map_decision_result
        if how == "resultList":
            return rows
        if how == "collectEntries":
            return [self._single_value(row) for row in rows]
        if len(rows) > 1:
            raise ValueError(
                f"mapDecisionResult '{how}' expects at most one matched rule, got {len(rows)}"
            )
        if not rows:
            return None
        return rows[0] if how == "singleResult" else self._single_value(rows[0])

    def _single_value(self, row: dict[str, Any]) -> Any:
        if len(row) != 1:
            raise ValueError(
                f"mapDecisionResult '{self.map_decision_result}' expects one output column, "
                f"the decision has {len(row)}"
            )
        return next(iter(row.values()))


class DecisionTaskParser(BusinessRuleTaskParser):  # type: ignore[misc]
    """Reads Camunda's result attributes; a missing decision raises SpiffWorkflow's
    ValidationException with the node, which deployment reports with the file."""

    def create_task(self) -> DecisionTask:
        ref = decision_ref(self.node)
        how = (self.node.get(f"{{{CAMUNDA_NS}}}mapDecisionResult") or "resultList").strip()
        if how not in MAPPINGS:
            self.raise_validation_exception(
                f"camunda:mapDecisionResult '{how}' is not one of {', '.join(sorted(MAPPINGS))}"
            )
        available = self.process_parser.parser.dmn_parsers
        if ref not in available:
            self.raise_validation_exception(
                f"camunda:decisionRef '{ref}' names no deployed decision (available: "
                f"{', '.join(sorted(available)) or 'none'}); deploy the .dmn file with the process"
            )
        result_variable = (self.node.get(f"{{{CAMUNDA_NS}}}resultVariable") or "").strip()
        return DecisionTask(
            self.spec,
            self.bpmn_id,
            dmnEngine=self.process_parser.parser.get_engine(ref, self.node),
            result_variable=result_variable or None,
            map_decision_result=how,
            **self.bpmn_attributes,
        )
