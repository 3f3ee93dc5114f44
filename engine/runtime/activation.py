"""One service task reached in a run (``Activation``), and what a behaviour is.

A behaviour (``behaviors/``) gets an ``Activation`` and decides: call the handler now and
complete, schedule a retry job on failure, defer to a job, or open an external task. The
activation applies input and output mappings around the call and keeps a failed attempt from
changing the task.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from engine.bpmn import instance_context, listeners, mappings
from engine.bpmn.specs import activity_config, implementation_handler
from engine.core import observe
from engine.core.errors import BpmnError, ExpressionError, HandlerError, NotFound
from engine.core.values import TaskContext
from engine.core.variables import check_variables
from engine.runtime.listeners import ListenerFailed
from engine.runtime.run_view import RunView

#: What a service task's handler is: called with the task's context, returns variables to set.
Handler = Callable[[TaskContext], Mapping[str, Any] | None]

#: The ``internal_data`` key on a parked service task under which it says why it is parked
#: (the key's text is in every stored instance, so it stays "spillway").
PARKED_KEY = "spillway"
#: ``internal_data[PARKED_KEY]`` values: why the task is parked.
PARKED_JOB = "job"
PARKED_EXTERNAL = "external"


class Behavior(Protocol):
    """What a service task does when the token reaches it (see ``behaviors/``)."""

    name: str

    def execute(self, act: Activation) -> None: ...


@dataclass
class Failure:
    """A handler's technical failure (or an uncaught BPMN error, which is never retried)."""

    error: BaseException
    stacktrace: str
    retryable: bool = True

    @property
    def message(self) -> str:
        text = str(self.error)
        return f"{type(self.error).__name__}: {text}" if text else type(self.error).__name__


class HandlerSource(Protocol):
    """What an activation needs from the engine: handlers and the script engine."""

    def handler_for(self, name: str) -> Handler | None: ...
    @property
    def script_engine(self) -> Any: ...


class Bookings(Protocol):
    """What an activation books through its run's ledger (``engine.runtime.ledger.Ledger``)."""

    def add_async_after(self, act: Activation) -> None: ...
    def add_continuation(self, act: Activation) -> None: ...
    def schedule_retry(self, act: Activation, failure: Failure) -> None: ...
    def add_external_task(self, act: Activation, topic: str) -> None: ...


class ActivationRun(RunView, Protocol):
    """What an activation needs from the run it belongs to (``engine.runtime.run.Run``)."""

    @property
    def services(self) -> HandlerSource: ...

    @property
    def ledger(self) -> Bookings: ...

    def throw_error(self, task: Any, code: str, variables: Mapping[str, Any]) -> bool: ...


class Activation:
    """One service task reached in a run: what a behaviour may do with it."""

    def __init__(self, run: ActivationRun, task: Any, *, in_job: bool, attempt: int) -> None:
        self.run = run
        self.task = task
        self.in_job = in_job
        self.attempt = attempt
        self.config = activity_config(task.task_spec)
        self.activity_id: str = task.task_spec.bpmn_id
        self.started_at = run.now

    @property
    def handler_name(self) -> str | None:
        return implementation_handler(self.config, self.activity_id)

    @property
    def idempotency_key(self) -> str:
        return f"{self.run.instance_id}:{self.task.id}"

    def context(self) -> TaskContext:
        return TaskContext(
            variables=MappingProxyType(copy.deepcopy(mappings.view(self.task))),
            instance_id=self.run.instance_id,
            activity_id=self.activity_id,
            business_key=instance_context.business_key_of(self.task, self.run.business_key),
            attempt=self.attempt,
            idempotency_key=self.idempotency_key,
            process_key=self.run.model.key,
            topic=self.config.get("topic"),
            properties=MappingProxyType(dict(self.config.get("properties") or {})),
        )

    def call(self) -> Failure | None:
        """Call the handler and apply its result. A technical failure is returned, not raised,
        and leaves the task exactly as it was before the call."""
        entered = mappings.locals_of(self.task) is not None
        listened = bool(listeners.listeners_of(self.task.task_spec).get("execution"))
        before = copy.deepcopy(self.task.data) if listened else None
        updates: dict[str, Any] | None = None
        ended = False
        try:
            # Input mappings, start listeners, the handler or camunda:expression, output
            # mappings, end listeners: any of them failing is the task's technical failure.
            mappings.enter(self.task, self.run.services.script_engine)
            listeners.fire(self.task, "execution", "start")
            result = self._call()
            if isinstance(result, dict):
                updates = mappings.leave(self.task, result, self.run.services.script_engine)
                if listened:
                    mappings.finish(self.task, updates)
                    updates, ended = {}, True
                    listeners.fire(self.task, "execution", "end")
        except (ExpressionError, ListenerFailed) as exc:
            result = Failure(exc, traceback.format_exc())
        if isinstance(result, Failure):
            if before is not None:
                self.task.data = before
            if not entered:
                self.task.internal_data.pop(mappings.LOCALS, None)  # the next attempt maps anew
            return result
        if isinstance(result, BpmnError):
            return self.throw_bpmn_error(result)
        self.complete(updates or {}, mapped=True, ended=ended)
        return None

    def _call(self) -> Failure | BpmnError | dict[str, Any]:
        name = self.handler_name
        if name is None and self.config.get("expression"):
            return mappings.evaluate_expression_task(self.task, self.config)
        if name is None and self.config.get("delegate_expression"):
            # Camunda resolves a delegate expression to a bean; here it must give the name of
            # a registered handler (``${approver == 'bot' ? 'autoApprove' : 'notify'}``).
            name = mappings.evaluate_name(
                self.task, str(self.config["delegate_expression"]), "camunda:delegateExpression"
            )
        handler = self.run.services.handler_for(name) if name else None
        if handler is None:
            missing = name or self.config.get("delegate_expression") or "(none)"
            return Failure(
                NotFound(f"no handler registered under '{missing}' for task '{self.activity_id}'"),
                "",
                retryable=True,
            )
        try:
            with observe.step(
                "spillway.handler",
                handler=name,
                instance_id=self.run.instance_id,
                activity_id=self.activity_id,
                attempt=self.attempt,
            ):
                result = handler(self.context())
            return check_variables(result, f"handler '{name}' of task '{self.activity_id}'")
        except BpmnError as err:
            return err
        except Exception as exc:  # noqa: BLE001 - any handler error is a technical failure
            return Failure(exc, traceback.format_exc())

    def complete(
        self, variables: Mapping[str, Any], *, mapped: bool = False, ended: bool = False
    ) -> None:
        """Complete with ``variables`` set (``mapped``: already through ``mappings.leave``;
        ``ended``: the end listeners already ran)."""
        if not mapped:
            # Output mappings first: one that fails leaves the task as it was.
            variables = mappings.leave(self.task, variables, self.run.services.script_engine)
        mappings.finish(self.task, variables)
        if not ended:
            listeners.fire(self.task, "execution", "end")
        if self.config.get("async_after"):
            # camunda:asyncAfter: commit here; a job leaves the task and moves on.
            self.park(PARKED_JOB)
            self.run.ledger.add_async_after(self)
            return
        self.task.internal_data.pop(PARKED_KEY, None)
        self.task.complete()
        self.run.history.record(
            self.task, self.started_at, self.run.now, "completed", attempt=self.in_job
        )

    def throw_bpmn_error(self, err: BpmnError) -> Failure | None:
        """Route a BPMN error to a matching boundary or event subprocess, or fail uncaught."""
        _, variables = mappings.split(self.task, err.variables)  # locals end with the task
        if not self.run.throw_error(self.task, err.code, variables):
            return Failure(
                err,
                "".join(traceback.format_exception(err)),
                retryable=False,
            )
        self.run.history.record(
            self.task, self.started_at, self.run.now, "error", str(err), attempt=self.in_job
        )
        return None

    def fail(self, failure: Failure) -> None:
        """Re-raise to the caller: nothing of this engine call is committed."""
        raise HandlerError(
            f"task '{self.activity_id}' failed: {failure.message}", activity_id=self.activity_id
        ) from failure.error

    def park(self, reason: str) -> None:
        self.task.internal_data[PARKED_KEY] = reason

    def schedule_retry(self, failure: Failure) -> None:
        """Discard the attempt, keep the task parked, and commit a continuation job due after
        the retry policy's delay, or an incident when retries are spent or not allowed."""
        self.park(PARKED_JOB)
        self.run.ledger.schedule_retry(self, failure)

    def defer(self) -> None:
        """Commit now and leave the call of the handler to a job due at once."""
        self.park(PARKED_JOB)
        self.run.ledger.add_continuation(self)

    def open_external_task(self, topic: str) -> None:
        # The worker sees the locals of the input mappings (evaluated now, kept with the task).
        mappings.enter(self.task, self.run.services.script_engine)
        listeners.fire(self.task, "execution", "start")
        self.park(PARKED_EXTERNAL)
        self.run.ledger.add_external_task(self, topic)
