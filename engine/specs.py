"""Task spec classes of our own, plugged into SpiffWorkflow's parser.

SpiffWorkflow's default service task does nothing and parks. Ours parks on purpose: the runtime
(not the library) calls the handler, so it can apply a behaviour (sync, async-on-error, external)
around the call and decide what is committed.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.defaults import ServiceTask as _SpiffServiceTask


class ServiceTask(_SpiffServiceTask):  # type: ignore[misc]
    """A service-like task (service, send or business-rule task with a handler or topic).

    ``extensions`` holds the activity configuration read from the BPMN attributes.
    """

    def _run_hook(self, my_task: Any) -> None:
        # None leaves the task STARTED: a wait state the runtime resolves.
        return None


def activity_config(task_spec: Any) -> dict[str, Any]:
    """The configuration dict the parser stored on a spec (empty for foreign specs)."""
    ext = getattr(task_spec, "extensions", None)
    return ext if isinstance(ext, dict) else {}


def implementation_handler(config: dict[str, Any], activity_id: str) -> str | None:
    """The handler a service-like task calls: the one its attributes name or, when it has no
    implementation attribute at all (bpmn.io cannot set one), the one registered under its
    element id. None when an expression, a delegate expression or a topic implements it."""
    name = config.get("handler")
    if name:
        return str(name)
    if config.get("expression") or config.get("delegate_expression") or config.get("external"):
        return None
    return activity_id
