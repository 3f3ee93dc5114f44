"""Camunda 8 correlation keys: ``zeebe:subscription correlationKey="=order.id"`` on a message.

Deploy hangs the keys of a deployment's messages on each process spec (message name ->
expression, ``attach``). When an instance starts waiting for such a message, the expression is
evaluated as FEEL against the waiting task's variables (paths, string concatenation, numbers:
any FEEL ``engine.expressions.feel`` evaluates) and the value is kept on the task for as long
as it waits, as Zeebe does: later changes of the variables do not move the key. A text that
does not start with ``=`` is the key itself. The value is text: a number becomes its decimal
digits (``42``, ``1.5``); anything else (null, a list, a context) is an error naming the
element and the message, and fails the call that reached the wait, as Zeebe raises an incident.
The subscription row carries it (``sw_subscriptions.correlation_key``), and
``correlate_message(..., correlation_key=...)`` matches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from engine.core.errors import ExpressionError
from engine.expressions import feel

#: On a process spec: message name -> correlationKey expression (or literal).
ATTRIBUTE = "spillway_correlation_keys"
#: On a waiting task's internal data: message name -> the key evaluated when it began to wait.
DATA_KEY = "spillway.correlation_keys"


def attach(specs: Iterable[Any], keys: Mapping[str, str]) -> None:
    for spec in specs:
        setattr(spec, ATTRIBUTE, dict(keys))


def key_text(value: Any, element: str, message: str) -> str:
    """A correlation key as the text subscriptions and correlations compare."""
    if (
        isinstance(value, bool)
        or value is None
        or not isinstance(value, str | int | float | Decimal)
    ):
        raise ExpressionError(
            f"{element}: the correlation key of message '{message}' must be a string or a "
            f"number, got {type(value).__name__} {value!r}"
        )
    if isinstance(value, str):
        return value
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _evaluate(expression: str, variables: Mapping[str, Any], element: str, message: str) -> str:
    if not expression.startswith("="):
        return expression
    return key_text(feel.evaluate(expression, variables, element), element, message)


def for_task(task: Any, message: str) -> str | None:
    """The key of ``message`` a waiting task subscribes with (None when its process gives the
    message none): evaluated the first time, then kept on the task."""
    expressions: Mapping[str, str] = getattr(task.workflow.spec, ATTRIBUTE, None) or {}
    expression = expressions.get(message)
    if expression is None:
        return None
    kept: dict[str, str] = task.internal_data.setdefault(DATA_KEY, {})
    if message not in kept:
        element = getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name
        kept[message] = _evaluate(expression, task.data, element, message)
    return kept[message]


def for_scope(spec: Any, workflow: Any, message: str, variables: Mapping[str, Any]) -> str | None:
    """The key of an event subprocess's message start (no task waits there: evaluated against
    the instance's variables whenever the instance is written)."""
    expressions: Mapping[str, str] = getattr(workflow.spec, ATTRIBUTE, None) or {}
    expression = expressions.get(message)
    if expression is None:
        return None
    element = getattr(spec, "bpmn_id", None) or spec.name
    return _evaluate(expression, variables, element, message)
