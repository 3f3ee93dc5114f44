"""User tasks keep Camunda's task-list attributes.

SpiffWorkflow's Camunda user-task parser keeps only ``camunda:formKey`` (with the form fields);
this one also stores ``camunda:assignee``, ``candidateUsers``, ``candidateGroups``, ``dueDate``,
``followUpDate``, ``priority``, ``formKey`` and the element's name under
``spec.extensions["user_task"]``, as written (expressions are evaluated when a token reaches the
task, ``engine.runtime.user_tasks``). Camunda 8's ``zeebe:assignmentDefinition``,
``zeebe:formDefinition`` and ``zeebe:taskSchedule`` are translated onto these same attributes
before parsing, so this reads only ``camunda:`` ones.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from SpiffWorkflow.camunda.parser.task_spec import UserTaskParser as CamundaUserTaskParser

from engine.bpmn.namespaces import CAMUNDA_NS

#: extensions key of a user task's attributes.
USER_TASK = "user_task"
#: camunda: attribute -> key in ``extensions["user_task"]``.
ATTRIBUTES = {
    "assignee": "assignee",
    "candidateUsers": "candidate_users",
    "candidateGroups": "candidate_groups",
    "dueDate": "due_date",
    "followUpDate": "follow_up_date",
    "priority": "priority",
    "formKey": "form_key",
}


def read_user_task(node: etree._Element) -> dict[str, Any]:
    """The task-list attributes of a ``userTask`` element, as written (None when absent)."""
    found: dict[str, Any] = {
        key: node.get(f"{{{CAMUNDA_NS}}}{attr}") for attr, key in ATTRIBUTES.items()
    }
    found["name"] = node.get("name")
    return found


class UserTaskParser(CamundaUserTaskParser):  # type: ignore[misc]
    def parse_extensions(self, node: etree._Element | None = None) -> dict[str, Any]:
        extensions = dict(super().parse_extensions(node) or {})
        extensions[USER_TASK] = read_user_task(self.node if node is None else node)
        return extensions
