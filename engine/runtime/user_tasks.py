"""User tasks as rows: created in the transaction in which a token reaches a user task, deleted
in the one in which it leaves (completed, interrupted by a boundary event, cancelled).

``reconcile`` runs at the end of every run (``Run.finish``): open user and manual tasks of the
workflow are compared with the ones the instance tracked (``open_activities["user_tasks"]``,
spiff task id -> row id); new ones get a row with their attributes evaluated now, gone ones
lose theirs. Attributes (``engine.deploy.user_task_parser``): a value with ``${...}`` is JUEL, a
value starting with ``=`` is FEEL (Camunda 8), anything else is a literal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any, Protocol

from SpiffWorkflow.util.task import TaskState

from engine.bpmn import mappings
from engine.bpmn.specs import activity_config
from engine.core import ids
from engine.core.errors import ExpressionError
from engine.deploy.deployment import ProcessModel
from engine.deploy.user_task_parser import USER_TASK
from engine.expressions import feel, juel
from engine.storage.write import InstanceWrite


class Run(Protocol):
    """What the user-task rows read of a run being finished (``engine.runtime.run.Run``)."""

    @property
    def row(self) -> dict[str, Any] | None: ...
    @property
    def write(self) -> InstanceWrite: ...
    @property
    def model(self) -> ProcessModel: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def now(self) -> datetime: ...


#: ``open_activities`` key of the tracked user tasks.
KEY = "user_tasks"
#: Camunda's default task priority.
DEFAULT_PRIORITY = 50


def is_user_task(task: Any) -> bool:
    return bool(task.state == TaskState.READY and getattr(task.task_spec, "manual", False))


def reconcile(run: Run, open_tasks: list[Any]) -> dict[str, str]:
    """Queue inserts and deletes of user task rows on ``run.write``; the tracked map to keep."""
    runtime = (run.row or {}).get("open_activities") or {}
    previous: dict[str, str] = dict(runtime.get(KEY) or {})
    current: dict[str, str] = {}
    for task in open_tasks:
        if not is_user_task(task):
            continue
        key = str(task.id)
        if key in previous:
            current[key] = previous.pop(key)
            continue
        row = new_row(run, task)
        run.write.user_tasks_insert.append(row)
        current[key] = row["id"]
    run.write.user_tasks_delete.extend(previous.values())
    return current


def new_row(run: Run, task: Any) -> dict[str, Any]:
    spec = task.task_spec
    attrs: Mapping[str, Any] = activity_config(spec).get(USER_TASK) or {}
    form = getattr(spec, "form", None)
    variables = mappings.view(task)
    element = f"element '{spec.bpmn_id}'"

    def value(key: str, attribute: str) -> Any:
        text = attrs.get(key)
        if text is None and key == "form_key":
            text = getattr(form, "key", None)
        return evaluate(text, variables, f"{element}: camunda:{attribute}")

    assignee = _name(value("assignee", "assignee"), f"{element}: camunda:assignee")
    priority = value("priority", "priority")
    return {
        "id": ids.new_id(),
        "instance_id": run.instance_id,
        "task_id": str(task.id),
        "activity_id": spec.bpmn_id,
        "name": attrs.get("name") or getattr(spec, "bpmn_name", None),
        "process_key": run.model.key,
        "assignee": assignee,
        "candidate_users": _names(
            value("candidate_users", "candidateUsers"), f"{element}: camunda:candidateUsers"
        ),
        "candidate_groups": _names(
            value("candidate_groups", "candidateGroups"), f"{element}: camunda:candidateGroups"
        ),
        "due_at": _when(value("due_date", "dueDate"), f"{element}: camunda:dueDate"),
        "follow_up_at": _when(
            value("follow_up_date", "followUpDate"), f"{element}: camunda:followUpDate"
        ),
        "priority": _priority(priority, f"{element}: camunda:priority"),
        "form_key": None if (fk := value("form_key", "formKey")) is None else str(fk),
        "rev": 1,
        "created_at": run.now,
    }


def evaluate(text: Any, variables: Mapping[str, Any], where: str) -> Any:
    """An attribute's value: FEEL for ``=...``, JUEL for ``${...}``, else the text itself."""
    if text is None:
        return None
    if not isinstance(text, str):
        return text
    try:
        if text.startswith(feel.MARKER):
            return feel.evaluate(text, variables, where)
        if text.startswith("="):  # Camunda 8 writes FEEL as =expr
            return feel.evaluate(text[1:], variables, where)
        if juel.is_expression(text):
            return juel.evaluate(text, variables)
    except ExpressionError as exc:
        raise ExpressionError(f"{where}: {exc}") from exc
    return text


def _name(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str | int):
        raise ExpressionError(f"{where}: gave {value!r}; it must give a user id")
    return str(value).strip()


def _names(value: Any, where: str) -> list[str]:
    """A comma-separated text or a list of names."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ExpressionError(f"{where}: gave {value!r}; it must give names or a list of them")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str | int):
            raise ExpressionError(f"{where}: gave {value!r}; it must give names")
        name = str(item).strip()
        if name and name not in out:
            out.append(name)
    return out


def _when(value: Any, where: str) -> datetime | None:
    """A date-time (a naive one is UTC), a date (midnight UTC) or ISO 8601 text."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ExpressionError(
                f"{where}: {value!r} is not an ISO 8601 date-time (e.g. 2026-12-24T10:00:00Z)"
            ) from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise ExpressionError(f"{where}: gave {value!r}; it must give a date-time")


def _priority(value: Any, where: str) -> int:
    if value is None or value == "":
        return DEFAULT_PRIORITY
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ExpressionError(f"{where}: gave {value!r}; it must give an integer") from None
