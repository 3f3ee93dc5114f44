"""External (``camunda:type="external"``): the task waits for a worker to fetch and complete it."""

from __future__ import annotations

from engine.bpmn import mappings
from engine.expressions import juel
from engine.runtime.activation import Activation


class ExternalBehavior:
    """Commits an external task row with the instance; workers (outside processes, in-engine
    worker pools, or the message-broker bridge) fetch and lock it by topic and complete it by id."""

    name = "external"

    def execute(self, act: Activation) -> None:
        topic = act.config.get("topic")
        if not topic:  # deployment refuses this; kept for specs loaded from old deployments
            raise ValueError(f"external task '{act.activity_id}' has no topic")
        text = str(topic)
        if juel.is_expression(text):
            # camunda:topic="${region}-orders": the topic is the expression's value.
            text = mappings.evaluate_name(act.task, text, "camunda:topic")
        act.open_external_task(text)
