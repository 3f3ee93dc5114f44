"""BPMN signals across instances, as Camunda broadcasts them.

A signal reaches every instance waiting for it: intermediate catch events, boundary events,
event-based gateways and signal event subprocesses. Waiting instances have ``kind="signal"``
subscription rows, so ``ProcessEngine.signal(name)`` finds them without loading anything else.

A signal thrown inside an instance (intermediate throw or end event) is caught inside that
instance by SpiffWorkflow at once. For the other instances, the throwing instance's commit
carries a ``signal`` job (due at once, no instance of its own) holding the name, the variables
and a signal id; the engine runs it right after the commit, and the job executor does if the
process stops in between, so a committed throw is never lost. Each instance applies a signal id
once (it keeps the last ``SEEN_LIMIT`` ids in its state), so a job re-run after a crash does not
deliver twice. Delivery to each instance is its own transaction: Camunda delivers in the
thrower's transaction, which one instance's optimistic write cannot do.

A signal also starts an instance of every process (latest version) with a signal start event
of its name; that instance's id comes from the signal id, so a re-run starts nothing twice.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any, Final

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition

from engine.bpmn import event_subprocesses

#: internal_data key on the workflow's root task: ids of the signals applied, newest last.
SEEN: Final = "spillway_signals_seen"
SEEN_LIMIT: Final = 200
KIND: Final = "signal"
#: Attempts of a signal job (a delivery fails only if the database does).
RETRIES: Final = 3


def thrown(workflow: Any) -> list[tuple[str, dict[str, Any]]]:
    """The signals this call threw, once."""
    found: list[tuple[str, dict[str, Any]]] = workflow.__dict__.pop(
        event_subprocesses.THROWN_SIGNALS, []
    )
    return found


def new_signal_id() -> str:
    return uuid.uuid4().hex


def starts_process(spec: Any, name: str) -> bool:
    """Does a process spec have a signal start event for ``name``?"""
    return any(
        isinstance(getattr(ts, "event_definition", None), SignalEventDefinition)
        and ts.event_definition.name == name
        for ts in spec.start.outputs
    )


def started_instance_id(signal_id: str, definition_id: str) -> str:
    """The id of the instance a signal starts from a definition: the same on a re-run, so a
    signal job run again after a crash starts nothing twice."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"spillway:{signal_id}:{definition_id}").hex


def deliver(workflow: Any, name: str, variables: Mapping[str, Any], signal_id: str) -> bool:
    """Deliver a signal to every catcher in the instance; False if this id was applied already
    or nothing here catches it."""
    root = workflow.task_tree
    seen: list[str] = list(root.internal_data.get(SEEN, []))
    if signal_id in seen:
        return False
    event = BpmnEvent(SignalEventDefinition(name), copy.deepcopy(dict(variables)))
    # Waiting catchers anywhere in the instance, and the top process's event subprocesses.
    caught = int(workflow.event_manager.catch(event, internal=False))
    for scope in event_subprocesses.active_scopes(workflow):
        if scope is workflow:
            continue  # SpiffWorkflow starts the top process's event subprocesses itself
        if event_subprocesses.start_event_subprocess(scope, event) is not None:
            caught += 1
    root.internal_data[SEEN] = [*seen, signal_id][-SEEN_LIMIT:]
    return caught > 0
