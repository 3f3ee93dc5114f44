"""What a workflow knows of the instance it runs in, for one run: its id and business key.

Neither is stored in the serialized workflow (the instance row holds them); the run binds them
when it loads the instance, and scripts (``execution.getProcessInstanceId()``), expressions and
task contexts read them here. A called process runs inside its caller's instance, with the
business key a ``camunda:in businessKey`` gave it (kept on the call activity's task).
"""

from __future__ import annotations

from typing import Any

#: ``internal_data`` key on a call activity's task: the business key it passed on.
BUSINESS_KEY = "spillway_business_key"


def bind(workflow: Any, instance_id: str, business_key: str | None) -> None:
    """Tell the workflow its instance's id and business key for this run."""
    workflow.spillway_instance_id = instance_id
    workflow.spillway_business_key = business_key


def instance_id_of(task: Any) -> str | None:
    """The id of the instance ``task`` runs in (None before a run bound it)."""
    value = getattr(task.workflow.top_workflow, "spillway_instance_id", None)
    return None if value is None else str(value)


def instance_business_key(task: Any) -> str | None:
    """The business key of the instance ``task`` runs in (not that of a called process)."""
    key = getattr(task.workflow.top_workflow, "spillway_business_key", None)
    return None if key is None else str(key)


def business_key_of(task: Any, default: str | None) -> str | None:
    """The business key of the (called) process ``task`` runs in: the key a
    ``camunda:in businessKey`` gave the nearest call activity above it, else ``default``."""
    workflow = task.workflow
    while workflow.parent_task_id is not None:
        caller = workflow.top_workflow.get_task_from_id(workflow.parent_task_id)
        if caller is None:
            break
        if BUSINESS_KEY in caller.internal_data:
            value = caller.internal_data[BUSINESS_KEY]
            return None if value is None else str(value)
        workflow = caller.workflow
    return default


def process_business_key(task: Any) -> str | None:
    """The business key of the (called) process ``task`` runs in, defaulting to the
    instance's."""
    return business_key_of(task, instance_business_key(task))


def set_called_business_key(call_task: Any, value: Any) -> None:
    """A call activity passes ``value`` on as the called process's business key."""
    call_task.internal_data[BUSINESS_KEY] = None if value is None else str(value)
