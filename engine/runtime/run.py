"""One engine call's work on one instance: move the token on, collect what to commit.

A ``Run`` never writes to the database: it changes the in-memory workflow and gathers rows in an
``InstanceWrite``, which the command seam (``engine.runtime.commands``) applies in one
transaction. If anything raises before that, nothing of the call is committed. What a run books
besides the instance row (jobs, incidents, external tasks) is its ``Ledger``
(``engine.runtime.ledger``); what finishing writes is ``engine.runtime.finish``.

Service tasks park in STARTED (see ``engine.bpmn.specs``); after each pass of SpiffWorkflow's engine
steps the run hands every newly parked service task to its *behaviour* (``behaviors/``), which
calls the handler through an ``Activation`` and decides what a failure means.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.control import SimpleBpmnTask, _EndJoin
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    ErrorEventDefinition,
    SignalEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from engine.bpmn import (
    event_subprocesses,
    instance_context,
    instance_state,
    listeners,
    mappings,
    signals,
    specs,
    subprocess_mappings,
    timer_events,
)
from engine.bpmn.specs import ServiceTask, activity_config
from engine.bpmn.task_tree import (
    SPIFF_FAILURES,
    History,
    is_visible,
    message_definitions,
    named_failure,
    task_by_id,
)
from engine.bpmn.workflow import EngineWorkflow
from engine.core import deep_stack, ids
from engine.core.errors import (
    CycleLimitExceeded,
    EngineError,
    HandlerError,
    NotFound,
)
from engine.deploy.deployment import ProcessModel
from engine.runtime import rows
from engine.runtime.activation import PARKED_KEY, Activation
from engine.runtime.ledger import Ledger
from engine.runtime.listeners import RunListenerHost
from engine.runtime.services import JobContext, Services
from engine.storage.write import InstanceWrite

log = logging.getLogger("spillway.runtime")

#: internal_data key on an event subprocess task once its start event fired.
TRIGGERED = specs.TRIGGERED

is_event_subprocess = specs.is_event_subprocess


class Run:
    """The work of one engine call on one instance."""

    def __init__(
        self,
        services: Services,
        model: ProcessModel,
        definition: Mapping[str, Any],
        workflow: Any,
        instance_row: dict[str, Any] | None,
        *,
        instance_id: str,
        business_key: str | None,
        job: JobContext | None = None,
    ) -> None:
        self.services = services
        self.model = model
        self.definition = definition
        self.wf = workflow
        self.row = instance_row
        self.instance_id = instance_id
        self.business_key = business_key
        self.job = job
        self.now = services.now()
        runtime = (instance_row or {}).get("open_activities") or {}
        self.history = History(
            instance_id, dict(runtime.get("open", {})), int(runtime.get("seq", 0))
        )
        self.write = InstanceWrite(instance={"id": instance_id}, expected_rev=None)
        #: The jobs, incidents and external tasks this run writes.
        self.ledger = Ledger(self, runtime)
        self._parked: list[Any] = []
        #: When each task that is now running or waiting started, for its history row.
        self.step_started: dict[UUID, datetime] = {}
        self._running: Any | None = None  # the task SpiffWorkflow is running, for errors
        # How often each element ran in this call: a cycle that never waits would otherwise
        # run (and grow the task tree) until memory runs out, inside one transaction.
        self._runs_per_element: dict[str, int] = {}
        self.wf.script_engine = services.script_engine
        instance_context.bind(self.wf, instance_id, business_key)
        listeners.bind_host(self.wf, RunListenerHost(self))  # engine.bpmn.listeners fire through it

    # -- construction -------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        services: Services,
        model: ProcessModel,
        definition: Mapping[str, Any],
        variables: Mapping[str, Any],
        business_key: str | None,
        instance_id: str | None = None,
    ) -> Run:
        # SpiffWorkflow predicts the task tree recursively: room for large models.
        wf = deep_stack.run(
            lambda: EngineWorkflow(
                model.spec, model.subprocess_specs, script_engine=services.script_engine
            ),
            len(model.spec.task_specs),
        )
        event_subprocesses.install(wf)
        if variables:
            initial = copy.deepcopy(dict(variables))
            # The start task was made READY (with a copy of the root's data) during
            # construction.
            for task in (wf.task_tree, *wf.get_tasks(state=TaskState.READY)):
                task.data.update(initial)
        return cls(
            services,
            model,
            definition,
            wf,
            None,
            instance_id=instance_id or ids.new_id(),
            business_key=business_key,
        )

    # -- moving on ----------------------------------------------------------------------

    def begin(self) -> None:
        """Leave the start event, or, with ``asyncBefore`` on it, commit a job that will."""
        start = self.async_start_event()
        if start is None:
            self.advance()
            self._start_at_first_start_event()
            return
        row = rows.new_job(
            "async-continuation",
            instance_id=self.instance_id,
            activity_id=start.bpmn_id,
            due_at=self.now,
            retries=self.services.retry_policy_for(self.model, start).retries + 1,
            created_at=self.now,
            payload={"sync": False, "start": True},
        )
        self.write.jobs_insert.append(row)

    def async_start_event(self) -> Any | None:
        for ts in self.model.spec.task_specs.values():
            is_none_start = type(ts).__name__ == "StartEvent" and type(
                getattr(ts, "event_definition", None)
            ).__name__ in ("NoneEventDefinition", "NoneType")
            if is_none_start and activity_config(ts).get("async_before"):
                return ts
        return None

    def begin_by_timer(self, event_id: str) -> None:
        """Start through the timer start event ``event_id`` (its timer-start job fired)."""
        # Other start events of the process (a none start fires at once) must not take the
        # token: the instance starts where its timer fired, as in Camunda.
        for task in self.wf.get_tasks(skip_subprocesses=True):
            other_start = isinstance(task.task_spec, StartEvent) and not any(
                t.event_id == event_id for t in timer_events.timers_of(task)
            )
            if other_start and not task.has_state(TaskState.FINISHED_MASK):
                task.cancel()
        self.advance()
        if not self._fire_start_timer(event_id):
            raise NotFound(f"process '{self.model.key}' has no timer start event '{event_id}'")

    def _start_at_first_start_event(self) -> None:
        """``start()`` of a process without a none start event begins at its first start
        event (timer, message, signal), without a payload, as Camunda's
        startProcessInstanceByKey does; with a none start event nothing else starts."""
        start_specs = [ts for ts in self.wf.spec.start.outputs if isinstance(ts, StartEvent)]
        if any(isinstance(ts.event_definition, NoneEventDefinition) for ts in start_specs):
            return  # the usual case, without a walk of the task tree
        starts = [
            t
            for t in self.wf.get_tasks(skip_subprocesses=True)
            if isinstance(t.task_spec, StartEvent) and t.workflow is self.wf
        ]
        if any(t.state == TaskState.COMPLETED for t in starts):
            return
        if self._fire_start_timer(None):
            return
        for task in starts:
            definition = task.task_spec.event_definition
            if task.state == TaskState.WAITING and isinstance(
                definition, MessageEventDefinition | SignalEventDefinition
            ):
                task.task_spec.catch(task, BpmnEvent(definition, {}))
                task.task_spec._update(task)
                self.advance()
                return

    def _fire_start_timer(self, event_id: str | None) -> bool:
        """Fire a timer start event of the process that still waits: the one named, or, for
        ``start()`` of a process whose only start events are timers, the first (as Camunda
        starts such a process at once when asked to)."""
        for task in self.wf.get_tasks(state=TaskState.WAITING, skip_subprocesses=True):
            if not isinstance(task.task_spec, StartEvent):
                continue
            for timer in timer_events.timers_of(task):
                if event_id is None or timer.event_id == event_id:
                    self.fire_timer(task, timer)
                    self.advance()
                    return True
        return False

    def begin_by_signal(self, name: str, variables: Mapping[str, Any], signal_id: str) -> None:
        self.advance()
        self.receive_signal(name, variables, signal_id)

    def begin_by_message(self, name: str, variables: Mapping[str, Any]) -> None:
        self.advance()
        self.correlate(name, variables)

    def _will_run(self, task: Any) -> None:
        self.step_started[task.id] = self.now
        self._running = task
        if len(task.task_spec.inputs) < 2:
            return  # a cycle re-enters through an element with several incoming flows
        name = task.task_spec.name
        runs = self._runs_per_element.get(name, 0) + 1
        self._runs_per_element[name] = runs
        limit = int(getattr(self.services.script_engine, "max_loop_iterations", 0)) or None
        if limit is not None and runs > limit and is_visible(task):
            element = getattr(task.task_spec, "bpmn_id", None) or name
            raise CycleLimitExceeded(
                f"{element}: ran {runs} times in one call, more than max_loop_iterations="
                f"{limit} (a cycle of the model that never waits?); nothing was committed"
            )

    def _step_error(self, exc: Exception) -> EngineError:
        failure = named_failure(exc, self._running)
        if failure is None:
            raise exc
        return failure

    def _did_run(self, task: Any) -> None:
        specs.apply_interrupts(self.wf)
        if isinstance(task.task_spec, ServiceTask) and task.state == TaskState.STARTED:
            self._parked.append(task)
            return
        if not is_visible(task):
            return
        started = self.step_started.pop(task.id, self.now)
        if task.state == TaskState.COMPLETED:
            if not self.history.close(str(task.id), self.now, "completed"):
                self.history.add(task, started, self.now, "completed")
        elif task.state == TaskState.ERROR:
            self.history.add(task, started, self.now, "failed")

    def advance(self) -> None:
        """Run engine steps and service tasks until every path waits or ends."""
        while True:
            try:
                deep_stack.run(
                    lambda: self.wf.do_engine_steps(
                        will_complete_task=self._will_run, did_complete_task=self._did_run
                    ),
                    len(self.wf.spec.task_specs),
                )
            except EngineError:
                raise
            except SpiffWorkflowException as exc:
                raise self._workflow_error(exc) from exc
            except SPIFF_FAILURES as exc:
                # A SpiffWorkflow internal failing on what a model feeds it (a multi-instance
                # collection that is not a list, say): named, not raw.
                raise self._step_error(exc) from exc
            if not self._parked:
                if self._end_idle_event_subprocesses() or self._end_finished_scopes():
                    continue
                return
            parked, self._parked = self._parked, []
            for task in parked:
                if task.state != TaskState.STARTED:
                    continue  # cancelled meanwhile, e.g. by an interrupting event
                self.reach(task, in_job=False, attempt=1)

    def _end_idle_event_subprocesses(self) -> bool:
        """When a scope's own flow has ended, its event subprocesses that never started stop
        listening (BPMN), so the scope can complete; SpiffWorkflow would wait for them."""
        if not self.model.has_event_subprocesses:
            return False
        idle = [
            t
            for t in self.wf.get_tasks(state=TaskState.STARTED)
            if is_event_subprocess(t) and TRIGGERED not in t.internal_data
        ]
        ended = False
        for esp in idle:
            scope = esp.workflow
            busy = any(
                t is not esp
                and not is_event_subprocess(t)
                and not isinstance(t.task_spec, _EndJoin | SimpleBpmnTask)
                for t in scope.get_tasks(state=TaskState.DEFINITE_MASK, skip_subprocesses=True)
            )
            if busy:
                continue
            esp.cancel()
            for join in scope.get_tasks(state=TaskState.WAITING, skip_subprocesses=True):
                if isinstance(join.task_spec, _EndJoin):
                    join.task_spec._update(join)
            ended = True
        return ended

    def _end_finished_scopes(self) -> bool:
        """End a process or subprocess whose every task has finished but that never reached
        its end: SpiffWorkflow starts an event subprocess that an event (an error, a message)
        triggered without a path to the scope's end, so once it interrupted the scope and
        finished, nothing would end it."""
        ended = False
        for wf in [*self.wf.subprocesses.values(), self.wf]:
            if wf.completed or wf.last_task is None:
                continue
            if wf.get_next_task(state=TaskState.NOT_FINISHED_MASK, skip_subprocesses=True):
                continue
            wf._mark_complete(wf.last_task)
            wf.completed_event(wf)
            ended = True
        return ended

    def reach(self, task: Any, *, in_job: bool, attempt: int) -> None:
        behavior = self.services.behavior_for(self.model, task.task_spec)
        self.guarded(
            task, lambda: behavior.execute(Activation(self, task, in_job=in_job, attempt=attempt))
        )

    def guarded(self, task: Any, step: Any) -> None:
        """Run ``step`` (which completes ``task`` and so moves SpiffWorkflow on): what
        SpiffWorkflow raises on the way is named, as in ``advance``."""
        try:
            step()
        except EngineError:
            raise
        except SpiffWorkflowException as exc:
            raise self._workflow_error(exc) from exc
        except SPIFF_FAILURES as exc:
            self._running = self._running or task
            raise self._step_error(exc) from exc

    def _workflow_error(self, exc: SpiffWorkflowException) -> EngineError:
        task = getattr(exc, "task", None)
        where = f"at '{task.task_spec.bpmn_id}' " if task is not None else ""
        return HandlerError(
            f"process '{self.model.key}' failed {where}: {exc}",
            activity_id=task.task_spec.bpmn_id if task is not None else None,
        )

    def throw_error(self, task: Any, code: str, variables: Mapping[str, Any]) -> bool:
        """Throw a BPMN error from ``task``; False when nothing catches it."""
        definition = ErrorEventDefinition(code, code=code)
        event = BpmnEvent(definition, dict(variables), target=task.workflow)
        if not event_subprocesses.can_catch(task.workflow, event):
            return False
        task.data.update(variables)
        subprocess_mappings.note_thrower(task)  # the scopes it leaves filter what it carries
        self.wf.top_workflow.event_manager.catch(event)
        specs.apply_interrupts(self.wf)
        return True

    # -- the public commands ------------------------------------------------------------

    def waiting_tasks(self, activity_id: str) -> list[Any]:
        return [
            t
            for t in self.wf.get_tasks(state=instance_state.OPEN_STATES)
            if getattr(t.task_spec, "bpmn_id", None) == activity_id
        ]

    def complete_task(self, activity_id: str, variables: Mapping[str, Any]) -> None:
        candidates = self.waiting_tasks(activity_id)
        manual = [t for t in candidates if t.state == TaskState.READY and t.task_spec.manual]
        receive = [
            t
            for t in candidates
            if t.state == TaskState.WAITING
            and isinstance(getattr(t.task_spec, "event_definition", None), MessageEventDefinition)
            and not isinstance(t.task_spec, BoundaryEvent)
        ]
        if manual:
            task = manual[0]
            mappings.set_values(task, copy.deepcopy(dict(variables)))  # locals stay local
            self.guarded(task, task.complete)
        elif receive:
            task = receive[0]
            self._deliver(task, task.task_spec.event_definition, variables)
        else:
            raise NotFound(
                f"instance {self.instance_id} has no user, manual or receive task waiting at "
                f"'{activity_id}' (waiting at: {', '.join(self.waiting_at()) or 'nothing'})"
            )
        self.history.record(task, self.now, self.now, "completed")
        self.advance()

    def message_catchers(self, name: str) -> list[tuple[Any, MessageEventDefinition]]:
        return [
            (t, d)
            for t in self.wf.get_tasks(state=TaskState.WAITING)
            for d in message_definitions(t)
            if d.name == name
        ]

    def correlate(self, name: str, variables: Mapping[str, Any]) -> None:
        catchers = self.message_catchers(name)
        if catchers:
            self._deliver(*catchers[0], variables)
        elif not self._start_message_event_subprocess(name, variables):
            raise NotFound(f"instance {self.instance_id} does not wait for message '{name}'")
        self.advance()

    def receive_signal(self, name: str, variables: Mapping[str, Any], signal_id: str) -> None:
        """A signal from outside this call (``ProcessEngine.signal`` or another instance's
        throw): every catcher here takes it, once per signal id."""
        signals.deliver(self.wf, name, variables, signal_id)
        specs.apply_interrupts(self.wf)
        self.advance()

    def _start_message_event_subprocess(self, name: str, variables: Mapping[str, Any]) -> bool:
        for scope in event_subprocesses.active_scopes(self.wf):
            for ts in event_subprocesses.subprocess_starts(scope, MessageEventDefinition):
                if ts.event_definition.name != name:
                    continue
                event = BpmnEvent(ts.event_definition, copy.deepcopy(dict(variables)))
                start = event_subprocesses.start_event_subprocess(scope, event)
                if start is not None:
                    self.triggered(start)
                    return True
        return False

    def _deliver(
        self, task: Any, definition: MessageEventDefinition, variables: Mapping[str, Any]
    ) -> None:
        event = BpmnEvent(definition, copy.deepcopy(dict(variables)))
        task.task_spec.catch(task, event)
        task.task_spec._update(task)
        self.triggered(task)

    def fire_timer(
        self, task: Any, timer: Any, following: datetime | None = None, fired: int = 1
    ) -> None:
        timer_events.fire(task, timer, following, fired)
        self.triggered(task)

    def event_subprocess_of(self, task: Any) -> Any | None:
        """The event subprocess whose start event ``task`` is, if it is one."""
        if not isinstance(task.task_spec, StartEvent):
            return None
        parent = self.task(str(task.workflow.parent_task_id or ""))
        return parent if parent is not None and is_event_subprocess(parent) else None

    def triggered(self, task: Any) -> None:
        """An event fired on ``task``: an event subprocess it starts begins now (its start
        event's ``catch``, ``engine.bpmn.specs.StartEvent``, already interrupted the scope)."""
        specs.apply_interrupts(self.wf)
        esp = self.event_subprocess_of(task)
        if esp is not None:
            self.step_started[esp.id] = self.now

    def finish_async_after(self, task: Any) -> None:
        """The job of an ``asyncAfter`` task ran: the task completes now."""
        task.internal_data.pop(PARKED_KEY, None)
        self.guarded(task, task.complete)
        self.history.record(task, self.now, self.now, "completed")

    # -- reading ------------------------------------------------------------------------

    def task(self, task_id: str | None) -> Any | None:
        return task_by_id(self.wf, task_id)

    def waiting_at(self) -> list[str]:
        """The BPMN ids where the instance waits now."""
        return instance_state.waiting_at(instance_state.open_tasks(self.wf))
