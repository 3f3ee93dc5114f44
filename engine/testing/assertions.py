"""``assert_that(instance)``: BPMN-aware assertions on a process instance, in the style of
camunda-bpm-assert.

Every check reads the instance afresh from the engine's database (``get_instance``,
``history``, ``jobs``, ``incidents``), never from the snapshot it was given, so a test sees what
was committed. A failing check raises ``AssertionError`` describing the whole instance: state,
waits, variables, history, open jobs and incidents.

The engine comes from ``engine=`` or else from the engine in use: the ``process_engine`` fixture
puts its engine in use for the test; ``use_engine(eng)`` does the same for an engine of your own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from engine.core.errors import NotFound
from engine.core.values import (
    ExternalTask,
    HistoryEntry,
    Incident,
    Job,
    ProcessInstance,
    has_ended,
)

if TYPE_CHECKING:
    from engine.engine import ProcessEngine

#: How much of an instance a failure message shows.
MAX_HISTORY = 40  # newest entries
MAX_VALUE = 120  # characters of one variable's repr
MAX_ERROR = 200  # characters of one error message

_engine_in_use: ContextVar[ProcessEngine | None] = ContextVar("spillway_engine", default=None)


@contextmanager
def use_engine(engine: ProcessEngine) -> Iterator[ProcessEngine]:
    """Make ``assert_that`` (and the helpers) use ``engine`` inside the ``with`` block."""
    token = _engine_in_use.set(engine)
    try:
        yield engine
    finally:
        _engine_in_use.reset(token)


def engine_in_use(engine: ProcessEngine | None = None) -> ProcessEngine:
    """``engine`` if given, else the engine in use; a clear error when there is none."""
    if engine is not None:
        return engine
    current = _engine_in_use.get()
    if current is None:
        raise RuntimeError(
            "no process engine in use: request the process_engine fixture, wrap the test in "
            "engine.testing.use_engine(eng), or pass engine=eng"
        )
    return current


def assert_that(
    instance: ProcessInstance | str, engine: ProcessEngine | None = None
) -> ProcessInstanceAssert:
    """Assertions on a process instance (or its id), read from ``engine`` or the one in use."""
    instance_id = instance.id if isinstance(instance, ProcessInstance) else instance
    if not isinstance(instance_id, str) or not instance_id:
        raise TypeError(f"assert_that needs a ProcessInstance or an instance id, got {instance!r}")
    return ProcessInstanceAssert(engine_in_use(engine), instance_id)


class ProcessInstanceAssert:
    """Chainable checks: each returns ``self`` and reads the database again."""

    def __init__(self, engine: ProcessEngine, instance_id: str) -> None:
        self.engine = engine
        self.instance_id = instance_id

    @property
    def instance(self) -> ProcessInstance:
        """The instance as the database holds it now."""
        __tracebackhide__ = True
        try:
            return self.engine.get_instance(self.instance_id)
        except NotFound:
            raise AssertionError(
                f"no process instance '{self.instance_id}' in the engine's database"
            ) from None

    # -- state --------------------------------------------------------------------------

    def is_completed(self) -> ProcessInstanceAssert:
        """The instance reached its end."""
        __tracebackhide__ = True
        return self._has_state("completed", "is_completed()")

    def is_active(self) -> ProcessInstanceAssert:
        """The instance runs and has no open incident (one with an incident has state
        ``"incident"``: check that with ``has_incident()``)."""
        __tracebackhide__ = True
        return self._has_state("active", "is_active()")

    def is_terminated(self) -> ProcessInstanceAssert:
        """A terminate end event (or an operator) ended the instance."""
        __tracebackhide__ = True
        return self._has_state("terminated", "is_terminated()")

    def is_ended(self) -> ProcessInstanceAssert:
        """Completed or terminated."""
        __tracebackhide__ = True
        inst = self.instance
        if not has_ended(inst.state):
            self._fail("is_ended()", f"its state is '{inst.state}'")
        return self

    def _has_state(self, state: str, check: str) -> ProcessInstanceAssert:
        __tracebackhide__ = True
        inst = self.instance
        if inst.state != state:
            self._fail(check, f"its state is '{inst.state}'")
        return self

    # -- where it waits -----------------------------------------------------------------

    def is_waiting_at(self, *activity_ids: str) -> ProcessInstanceAssert:
        """The instance waits at each of these activities (and perhaps elsewhere too, as
        camunda-bpm-assert's ``isWaitingAt``)."""
        __tracebackhide__ = True
        check = _call("is_waiting_at", activity_ids)
        waits = self._waits(activity_ids, check)
        missing = [a for a in activity_ids if a not in waits]
        if missing:
            self._fail(check, f"it does not wait at {_ids(missing)}; it waits at {_ids(waits)}")
        return self

    def is_waiting_exactly_at(self, *activity_ids: str) -> ProcessInstanceAssert:
        """The instance waits at these activities and nowhere else."""
        __tracebackhide__ = True
        check = _call("is_waiting_exactly_at", activity_ids)
        waits = self._waits(activity_ids, check)
        if set(waits) != set(activity_ids):
            self._fail(check, f"it waits at {_ids(waits)}")
        return self

    def is_not_waiting_at(self, *activity_ids: str) -> ProcessInstanceAssert:
        """The instance waits at none of these activities."""
        __tracebackhide__ = True
        check = _call("is_not_waiting_at", activity_ids)
        waits = self._waits(activity_ids, check)
        found = [a for a in activity_ids if a in waits]
        if found:
            self._fail(check, f"it waits at {_ids(found)}")
        return self

    def _waits(self, activity_ids: Sequence[str], check: str) -> list[str]:
        if not activity_ids:
            raise ValueError(f"{check} needs at least one activity id")
        return self.instance.waiting_at

    # -- history ------------------------------------------------------------------------

    def has_passed(self, *activity_ids: str) -> ProcessInstanceAssert:
        """Each activity completed at least once (a history entry with outcome
        ``"completed"``; a task a boundary event interrupted has not passed)."""
        __tracebackhide__ = True
        check = _call("has_passed", activity_ids)
        passed = self._passed(activity_ids, check)
        missing = [a for a in activity_ids if a not in passed]
        if missing:
            self._fail(check, f"it has not passed {_ids(missing)}")
        return self

    def has_not_passed(self, *activity_ids: str) -> ProcessInstanceAssert:
        """None of these activities completed."""
        __tracebackhide__ = True
        check = _call("has_not_passed", activity_ids)
        passed = self._passed(activity_ids, check)
        found = [a for a in activity_ids if a in passed]
        if found:
            self._fail(check, f"it has passed {_ids(found)}")
        return self

    def has_passed_in_order(self, *activity_ids: str) -> ProcessInstanceAssert:
        """The activities completed in this order, other activities allowed in between; an id
        may repeat (a loop passed twice), as camunda-bpm-assert's ``hasPassedInOrder``."""
        __tracebackhide__ = True
        check = _call("has_passed_in_order", activity_ids)
        passed = self._passed(activity_ids, check)
        position = 0
        for activity_id in passed:
            if position < len(activity_ids) and activity_id == activity_ids[position]:
                position += 1
        if position < len(activity_ids):
            self._fail(
                check,
                f"after passing {_ids(activity_ids[:position])} in that order it did not pass "
                f"'{activity_ids[position]}'; completed in order: {_ids(passed)}",
            )
        return self

    def _passed(self, activity_ids: Sequence[str], check: str) -> list[str]:
        """Completed activities in the order they ended (ties keep the history's order)."""
        if not activity_ids:
            raise ValueError(f"{check} needs at least one activity id")
        done = [h for h in self.engine.history(self.instance_id) if h.outcome == "completed"]
        done.sort(key=lambda h: h.ended_at or h.started_at)
        return [h.activity_id for h in done]

    # -- variables ----------------------------------------------------------------------

    def has_variables(self, *names: str, **expected: Any) -> ProcessInstanceAssert:
        """``has_variables("a", "b")``: these variables exist; ``has_variables(a=1)``: they
        exist with these values (``==``); both forms mix. Without arguments: it has any."""
        __tracebackhide__ = True
        parts = [repr(n) for n in names] + [f"{k}={v!r}" for k, v in expected.items()]
        check = f"has_variables({', '.join(parts)})"
        variables = self.instance.variables
        if not names and not expected:
            if not variables:
                self._fail(check, "it has no variables")
            return self
        problems = [f"'{n}' is missing" for n in names if n not in variables]
        for key, value in expected.items():
            if key not in variables:
                problems.append(f"'{key}' is missing")
            elif variables[key] != value:
                problems.append(f"'{key}' is {_short(variables[key])}, expected {_short(value)}")
        if problems:
            self._fail(check, "; ".join(problems))
        return self

    def has_no_variables(self, *names: str) -> ProcessInstanceAssert:
        """None of these variables exists."""
        __tracebackhide__ = True
        check = _call("has_no_variables", names)
        if not names:
            raise ValueError(f"{check} needs at least one variable name")
        found = [n for n in names if n in self.instance.variables]
        if found:
            self._fail(check, f"it has {_ids(found)}")
        return self

    # -- jobs and incidents -------------------------------------------------------------

    def has_incident(
        self, at: str | None = None, message: str | None = None
    ) -> ProcessInstanceAssert:
        """An open incident (at activity ``at``; whose message contains ``message``)."""
        __tracebackhide__ = True
        args = [f"{k}={v!r}" for k, v in (("at", at), ("message", message)) if v is not None]
        check = f"has_incident({', '.join(args)})"
        found = self._matching(self.engine.incidents(self.instance_id), at)
        if message is not None:
            found = [i for i in found if message in i.message]
        if not found:
            self._fail(check, "no open incident matches")
        return self

    def has_no_incident(self) -> ProcessInstanceAssert:
        """No open incident."""
        __tracebackhide__ = True
        if self.engine.incidents(self.instance_id):
            self._fail("has_no_incident()", "it has an open incident")
        return self

    def has_job(self, at: str | None = None, kind: str | None = None) -> ProcessInstanceAssert:
        """A job (at activity ``at``; of ``kind``: ``"async-continuation"``, ``"timer"``...)."""
        __tracebackhide__ = True
        args = [f"{k}={v!r}" for k, v in (("at", at), ("kind", kind)) if v is not None]
        check = f"has_job({', '.join(args)})"
        found = self._matching(self.engine.jobs(self.instance_id), at)
        if kind is not None:
            found = [j for j in found if j.kind == kind]
        if not found:
            self._fail(check, "no job matches")
        return self

    @staticmethod
    def _matching(items: list[Any], at: str | None) -> list[Any]:
        return [i for i in items if at is None or i.activity_id == at]

    # -- failure ------------------------------------------------------------------------

    def _fail(self, check: str, reason: str) -> NoReturn:
        __tracebackhide__ = True
        raise AssertionError(
            f"assert_that('{self.instance_id}').{check}: {reason}\n\n{self.describe()}"
        )

    def describe(self) -> str:
        """The instance as the database holds it now, in the shape failure messages show."""
        try:
            inst = self.engine.get_instance(self.instance_id)
        except NotFound:
            return f"no process instance '{self.instance_id}' in the engine's database"
        return describe_instance(
            inst,
            self.engine.history(self.instance_id),
            self.engine.jobs(self.instance_id),
            self.engine.incidents(self.instance_id),
            self.engine.external_tasks.list(instance_id=self.instance_id),
        )


def describe_instance(
    inst: ProcessInstance,
    history: Sequence[HistoryEntry],
    jobs: Sequence[Job],
    incidents: Sequence[Incident],
    external_tasks: Sequence[ExternalTask] = (),
) -> str:
    """A readable, multi-line account of one instance (external tasks only when it has
    some)."""
    key = f", business key '{inst.business_key}'" if inst.business_key else ""
    lines = [
        f"instance {inst.id} of '{inst.process_key}' v{inst.version}{key}: state '{inst.state}'",
        f"waiting at: {', '.join(inst.waiting_at) or 'nothing'}",
    ]
    lines += _section("variables", sorted(inst.variables.items()), _variable)
    shown = list(history)[-MAX_HISTORY:]
    title = "history (oldest first)"
    if len(history) > len(shown):
        title += f", last {len(shown)} of {len(history)}"
    lines += _section(title, shown, _history_line)
    lines += _section("open jobs", jobs, _job_line)
    if external_tasks:
        lines += _section("external tasks", external_tasks, external_task_line)
    lines += _section("open incidents", incidents, _incident_line)
    return "\n".join(lines)


def _section(title: str, items: Sequence[Any], fmt: Callable[[Any], str]) -> list[str]:
    if not items:
        return [f"{title}: none"]
    return [f"{title}:", *(f"  {fmt(item)}" for item in items)]


def _variable(item: tuple[str, Any]) -> str:
    return f"{item[0]} = {_short(item[1])}"


def _history_line(h: HistoryEntry) -> str:
    outcome = h.outcome or "running"
    if h.ended_at is not None and _time(h.ended_at) != _time(h.started_at):
        outcome += f" at {_time(h.ended_at)}"
    error = f": {_clip(h.error)}" if h.error else ""
    return f"{_time(h.started_at)}  {h.activity_id} ({h.activity_type})  {outcome}{error}"


def _job_line(j: Job) -> str:
    parts = [
        f"{j.kind} at {j.activity_id}",
        f"due {_time(j.due_at)}",
        f"retries left {j.retries_left}",
        f"attempts {j.attempts}",
    ]
    if j.locked_by:
        parts.append(f"locked by {j.locked_by} until {_time(j.lock_expires_at)}")
    if j.last_error:
        parts.append(f"last error: {_clip(j.last_error)}")
    return ", ".join(parts)


def external_task_line(task: ExternalTask) -> str:
    """One external task as failure messages show it."""
    parts = [f"topic '{task.topic}' at {task.activity_id} (instance {task.instance_id})"]
    if task.state != "open":
        parts.append(task.state)
    if task.worker_id and task.lock_expires_at is not None:
        parts.append(f"locked by {task.worker_id} until {_time(task.lock_expires_at)}")
    if task.due_at is not None and task.created_at is not None and task.due_at > task.created_at:
        parts.append(f"due {_time(task.due_at)}")
    if task.retries is not None:
        parts.append(f"retries left {task.retries}")
    if task.error_message:
        parts.append(f"last error: {_clip(task.error_message)}")
    return ", ".join(parts)


def _incident_line(i: Incident) -> str:
    return f"at {i.activity_id} since {_time(i.created_at)}: {_clip(i.message)}"


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _clip(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= MAX_ERROR else line[: MAX_ERROR - 3] + "..."


def _ids(ids: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in ids) + "]" if ids else "nothing"


def _call(name: str, args: Sequence[str]) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"
