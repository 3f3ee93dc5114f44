"""Timer events as jobs.

SpiffWorkflow polls timers against ``datetime.now()`` and evaluates their text as Python, so
Camunda's unquoted ``PT5M`` fails and virtual time is impossible. Our ``Timer`` definition never
looks at a clock: it has fired only when a timer job said so. The runtime turns every waiting
timer into a ``timer`` job (due time from ``core.timers``), deletes the job when its event stops
waiting (the activity ended, another gateway branch won), and the job executor fires it like any
other job. Timer start events of a process become ``timer-start`` jobs of the definition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState

from engine.bpmn.namespaces import BPMN_NS
from engine.core.errors import EngineError, ExpressionError
from engine.core.timers import TimerDefinition, TimerError, parse_timer
from engine.expressions import feel, feel_values, juel

KINDS = ("timeDate", "timeDuration", "timeCycle")
#: Kind of a timer drawn without a time: it never falls due (see ``parse_definition``).
UNSET = "unset"
#: Due time of such a timer's job: it runs only when executed explicitly.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)

logger = logging.getLogger("spillway.timers")

#: internal_data keys on the task that hosts a timer.
FIRED = "spillway_timers_fired"  # event ids fired and not yet consumed
EXHAUSTED = "spillway_timers_done"  # cycles that fired their last repetition
CYCLE = "spillway_cycle"  # on a repeating boundary event: {event: {fired, due}} of the next firing


class Timer(TimerEventDefinition):  # type: ignore[misc]
    """A timer event definition that fires only when its job runs."""

    def __init__(self, name: str, expression: str, kind: str, event_id: str, **kwargs: Any):
        super().__init__(name, expression, **kwargs)
        self.kind = kind
        self.event_id = event_id

    def has_fired(self, my_task: Any) -> bool:
        return self.event_id in my_task.internal_data.get(FIRED, ())

    def catch(self, my_task: Any, event: Any = None) -> None:
        fired = list(my_task.internal_data.get(FIRED, ()))
        if self.event_id not in fired:
            fired.append(self.event_id)
        my_task.internal_data[FIRED] = fired

    def reset(self, my_task: Any) -> None:
        fired = [e for e in my_task.internal_data.get(FIRED, ()) if e != self.event_id]
        if fired:
            my_task.internal_data[FIRED] = fired
        else:
            my_task.internal_data.pop(FIRED, None)
        super().reset(my_task)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timer) and other.event_id == self.event_id

    __hash__ = None  # type: ignore[assignment]

    def text(self, variables: Mapping[str, Any]) -> str:
        """The timer's text, with a ``${...}`` expression (or Camunda 8's FEEL ``=expr``)
        evaluated against ``variables``."""
        if str(self.expression).startswith(feel.MARKER):
            return _feel_timer(self.event_id, str(self.expression), variables)
        if not juel.is_expression(self.expression):
            return str(self.expression)
        try:
            value = juel.evaluate(self.expression, variables)
        except ExpressionError as exc:
            raise EngineError(f"timer '{self.event_id}': {exc}") from exc
        if not isinstance(value, str):
            raise EngineError(
                f"timer '{self.event_id}': {self.expression} gave {value!r}; a timer expression "
                "must give an ISO-8601 text"
            )
        return value

    def definition(self, text: str) -> TimerDefinition:
        if self.kind == UNSET:
            return TimerDefinition("date", "", date=NEVER)
        try:
            return parse_timer(self.kind, text)
        except TimerError as exc:
            raise EngineError(f"timer '{self.event_id}': {exc}") from exc


def parse_definition(parser: Any, event: etree._Element) -> Timer:
    """``parse_timer_event`` of our event parsers: checks literal timers at deploy time."""
    node = parser.node
    event_id = node.get("id")
    name = node.get("name", event_id)
    children = [(kind, event.find(f"{{{BPMN_NS}}}{kind}")) for kind in KINDS]
    found = [(kind, (child.text or "").strip()) for kind, child in children if child is not None]
    description = parser.get_event_description(event)
    if not any(text for _, text in found):
        # Modelers create a timer without a time when one is dropped on the canvas; Camunda
        # refuses the file. Spillway runs it as a timer that never falls due: its job waits
        # until an operator or a test runs it (execute_job), like firing a Camunda timer job
        # ahead of time. Warned, so nobody mistakes it for a working timer.
        logger.warning(
            "%s: timer '%s' has no timeDate, timeDuration or timeCycle: it never fires by itself "
            "(its job is due %s; run it with execute_job)",
            parser.filename,
            event_id,
            NEVER.date().isoformat(),
        )
        return Timer(name, "", UNSET, event_id, description=description)
    kind, text = found[0]
    problem = _problem(kind, text)
    if problem:
        raise ValidationException(
            f"timer '{event_id}': {problem}", node=node, file_name=parser.filename
        )
    return Timer(name, text, kind, event_id, description=description)


def _problem(kind: str, text: str) -> str | None:
    if not text:
        return f"its {kind} is empty"
    if text.startswith(feel.MARKER):
        return feel.check(text)
    try:
        if juel.is_expression(text):
            juel.compile_expression(text)
        else:
            parse_timer(kind, text)
    except (TimerError, ExpressionError) as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Waiting:
    """A timer whose host task waits for it."""

    task: Any
    timer: Timer

    @property
    def key(self) -> str:
        return f"{self.task.id}/{self.timer.event_id}"


def timers_of(task: Any) -> list[Timer]:
    return timers_of_spec(task.task_spec)


def timers_of_spec(task_spec: Any) -> list[Timer]:
    """The timer definitions of one element (a timer event, or a multiple event's timers)."""
    definition = getattr(task_spec, "event_definition", None)
    if isinstance(definition, Timer):
        return [definition]
    if isinstance(definition, MultipleEventDefinition):
        return [d for d in definition.event_definitions if isinstance(d, Timer)]
    return []


def waiting_timers(tasks: list[Any]) -> Iterator[Waiting]:
    """Timers of WAITING tasks that have neither fired nor run out."""
    for task in tasks:
        if task.state != TaskState.WAITING:
            continue
        done = task.internal_data.get(EXHAUSTED, ())
        for timer in timers_of(task):
            if not timer.has_fired(task) and timer.event_id not in done:
                yield Waiting(task, timer)


def repeats_in_place(task: Any, timer: Timer) -> bool:
    """A cycle on a non-interrupting boundary event fires again and again while its activity
    runs; any other timer fires once and moves its token on (Camunda's rule)."""
    spec = task.task_spec
    return (
        timer.kind == "timeCycle" and isinstance(spec, BoundaryEvent) and not spec.cancel_activity
    )


def fire(task: Any, timer: Timer, following: datetime | None = None, fired: int = 1) -> None:
    """Fire ``timer`` on its waiting host task. ``following``: the next firing of a repeating
    boundary timer, waited for by a fresh boundary event beside this one."""
    if following is not None and repeats_in_place(task, timer):
        # The fired event's path must survive the activity's end, so it completes like a
        # one-shot event; the next repetition waits on a new sibling (SpiffWorkflow's own cycle
        # support grows paths under the waiting event, which the activity's end cancels).
        sibling = task.parent._add_child(task.task_spec, TaskState.WAITING)
        sibling.task_spec._predict(sibling, mask=TaskState.NOT_FINISHED_MASK)
        sibling.internal_data[CYCLE] = {
            timer.event_id: {"fired": fired, "due": following.isoformat()}
        }
    task.task_spec.catch(task, BpmnEvent(timer))
    task.task_spec._update(task)


def carried_cycle(task: Any, timer: Timer) -> tuple[datetime, int] | None:
    """The next due time and firings so far that a repeating boundary event inherited."""
    state = task.internal_data.get(CYCLE, {}).get(timer.event_id)
    if state is None:
        return None
    return datetime.fromisoformat(state["due"]), int(state["fired"])


def start_timers(spec: Any) -> list[Timer]:
    """Timer definitions of a process's own start events (not of event subprocesses)."""
    found = []
    for ts in spec.task_specs.values():
        if isinstance(ts, StartEvent) and isinstance(ts.event_definition, Timer):
            found.append(ts.event_definition)
    return found


def due_after(timer: Timer, text: str, start: datetime) -> datetime | None:
    return timer.definition(text).first_due(start)


def _feel_timer(event_id: str, text: str, variables: Mapping[str, Any]) -> str:
    """A FEEL timer: a duration, a date-time or an ISO-8601 / cron text."""
    try:
        value = feel.evaluate_raw(text, variables, event_id)
    except ExpressionError as exc:
        raise EngineError(f"timer '{event_id}': {exc}") from exc
    if isinstance(value, timedelta):
        return str(feel_values.iso_duration(value))
    if isinstance(value, datetime):
        return value.isoformat()
    if not isinstance(value, str):
        raise EngineError(
            f"timer '{event_id}': {text[len(feel.MARKER) :]} gave {value!r}; a timer expression "
            "must give a duration, a date-time or an ISO-8601 text"
        )
    return value
