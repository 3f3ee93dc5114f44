"""What an external task shows a worker: the requested topics, and the parked task's own data.

Topics for ``fetch_and_lock`` come in three forms (mixable in one list)::

    ["billing", "shipping"]                                  # names: the call's lock_duration
    [("billing", 30.0), ("shipping", 120.0, ["order_id"])]   # (name, seconds[, variable names])
    [{"topic": "billing", "lock_duration": 30.0, "variables": ["amount"]}]

Durations are seconds (or ``timedelta``) like everywhere in Spillway. The dict form also takes
Camunda's key ``topicName``; Camunda's ``lockDuration`` (milliseconds) is refused by name so a
copied REST body cannot lock a task for a thousand times too long.

Variables are read from the stored instance without building the workflow: SpiffWorkflow keeps
each task's data as a delta against its parent, so a task's data is its ancestors' deltas
applied from the root down. That is the data a synchronous handler of the same task would see
(process variables plus, inside a multi-instance activity, the item variable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.bpmn.mappings import LOCALS
from engine.core import durations, limits
from engine.core.errors import EngineError

MAX_LOCK_DURATION = 366 * 24 * 3600.0  # seconds; anything longer is a unit mistake


@dataclass(frozen=True)
class TopicRequest:
    topic: str
    lock_duration: float
    #: Variable names to return; None returns all of the task's variables.
    variables: tuple[str, ...] | None = None
    #: Only tasks of instances with this business key (None: any).
    business_key: str | None = None
    #: Only tasks of these process keys / definition ids (None: any).
    process_keys: tuple[str, ...] | None = None
    definition_ids: tuple[str, ...] | None = None
    #: Only tasks of instances having at least one of these variables with its value (Camunda's
    #: ``processVariables``: the pairs are alternatives); values are str, number, bool or None.
    process_variables: tuple[tuple[str, Any], ...] | None = None
    #: Only tasks of definitions with this ``camunda:versionTag``.
    version_tag: str | None = None

    def filters(self) -> dict[str, Any]:
        """The narrowing filters of this topic, for ``Store.lock_external_tasks``."""
        out: dict[str, Any] = {}
        if self.business_key is not None:
            out["business_key"] = self.business_key
        if self.process_keys is not None:
            out["process_keys"] = self.process_keys
        if self.definition_ids is not None:
            out["definition_ids"] = self.definition_ids
        if self.process_variables is not None:
            out["process_variables"] = self.process_variables
        return out


def seconds(value: object, what: str) -> float:
    """A lock duration (or another positive duration) in seconds, at most a year."""
    return durations.seconds(value, what, positive=True, maximum=MAX_LOCK_DURATION)


def _names(value: object, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise EngineError(f"{where}: variables must be a list of names, got {limits.shown(value)}")
    if not all(isinstance(v, str) and v for v in value):
        raise EngineError(
            f"{where}: variables must be non-empty strings, got {limits.shown(value)}"
        )
    return tuple(value)


def parse_topics(
    topics: object, lock_duration: object, variables: object
) -> dict[str, TopicRequest]:
    """The topic list of a ``fetch_and_lock`` call, validated; keyed by topic name."""
    default_lock = seconds(lock_duration, "lock_duration")
    default_names = _names(variables, "fetch_and_lock")
    if isinstance(topics, str | bytes) or not isinstance(topics, Sequence) or not topics:
        raise EngineError(f"topics must be a non-empty list, got {limits.shown(topics)}")
    out: dict[str, TopicRequest] = {}
    for item in topics:
        if isinstance(item, str):
            request = TopicRequest(item, default_lock, default_names)
        elif isinstance(item, Mapping):
            request = _from_mapping(item, default_lock, default_names)
        elif isinstance(item, tuple) and 1 <= len(item) <= 3:
            where = f"topic {limits.shown(item[0])}"
            request = TopicRequest(
                item[0],
                seconds(item[1], f"{where}: lock duration") if len(item) > 1 else default_lock,
                _names(item[2], where) if len(item) > 2 else default_names,
            )
        else:
            raise EngineError(
                f"a topic is a name, a (name, lock_duration[, variables]) tuple or a dict, "
                f"got {limits.shown(item)}"
            )
        if not isinstance(request.topic, str) or not request.topic:
            raise EngineError(
                f"a topic name must be a non-empty string, got {limits.shown(request.topic)}"
            )
        limits.check_name(request.topic, "topic")
        if request.topic in out:
            raise EngineError(f"topic '{request.topic}' is requested twice")
        out[request.topic] = request
    return out


def _from_mapping(
    item: Mapping[Any, Any], default_lock: float, default_names: tuple[str, ...] | None
) -> TopicRequest:
    if "lockDuration" in item:
        raise EngineError(
            "topic dict: 'lockDuration' is Camunda's milliseconds; "
            "give 'lock_duration' in seconds instead"
        )
    unknown = set(item) - {
        "topic",
        "topicName",
        "lock_duration",
        "variables",
        "business_key",
        "process_key",
        "definition_id",
        "process_variables",
        "version_tag",
    }
    if unknown:
        raise EngineError(f"topic dict: unknown keys {sorted(map(str, unknown))}")
    name = item.get("topic", item.get("topicName"))
    where = f"topic {limits.shown(name)}"
    lock = (
        seconds(item["lock_duration"], f"{where}: lock_duration")
        if "lock_duration" in item
        else default_lock
    )
    names = _names(item["variables"], where) if "variables" in item else default_names
    business_key = item.get("business_key")
    if business_key is not None and not isinstance(business_key, str):
        raise EngineError(f"{where}: business_key must be a string, got {business_key!r}")
    version_tag = item.get("version_tag")
    if version_tag is not None and not isinstance(version_tag, str):
        raise EngineError(f"{where}: version_tag must be a string, got {limits.shown(version_tag)}")
    return TopicRequest(
        name,
        lock,
        names,
        business_key=business_key,
        process_keys=_one_or_many(item.get("process_key"), f"{where}: process_key"),
        definition_ids=_one_or_many(item.get("definition_id"), f"{where}: definition_id"),
        process_variables=_variable_filter(item.get("process_variables"), where),
        version_tag=version_tag,
    )


def _variable_filter(value: object, where: str) -> tuple[tuple[str, Any], ...] | None:
    """``{name: value}`` of a ``process_variables`` filter; None or ``{}``: no filter."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise EngineError(
            f"{where}: process_variables must map variable names to values, "
            f"got {limits.shown(value)}"
        )
    pairs = []
    for name, wanted in value.items():
        if not isinstance(name, str) or not name or '"' in name or "\\" in name:
            raise EngineError(f"{where}: process_variables: bad variable name {limits.shown(name)}")
        if wanted is not None and not isinstance(wanted, str | int | float | bool):
            raise EngineError(
                f"{where}: process_variables['{name}'] must be a string, number, boolean or "
                f"null (a filter compares values), got {limits.shown(wanted)}"
            )
        pairs.append((name, wanted))
    return tuple(pairs) or None


def _one_or_many(value: object, where: str) -> tuple[str, ...] | None:
    """A filter given as one string or a list of strings (None: no filter)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise EngineError(f"{where} must be a string or a list of strings, got {value!r}")


class InstanceData:
    """One stored instance state, parsed once, answering the data of any of its tasks."""

    def __init__(self, state_json: str, fallback: Mapping[str, Any]) -> None:
        self._state: dict[str, Any] = json.loads(state_json)
        self._fallback = fallback
        self._maps: list[dict[str, Any]] = [self._state.get("tasks", {})]
        for sub in (self._state.get("subprocesses") or {}).values():
            self._maps.append(sub.get("tasks", {}))

    def task_data(self, task_id: str) -> dict[str, Any]:
        """The task's data; the instance's process variables if the task is not in the state
        any more (it moved on after the row was read)."""
        for tasks in self._maps:
            if task_id in tasks:
                data = _walk(tasks, task_id)
                if data is not None:
                    # The locals of the task's input mappings (engine.bpmn.mappings) cover them.
                    data.update((tasks[task_id].get("internal_data") or {}).get(LOCALS) or {})
                    return data
        return dict(self._fallback)


def _walk(tasks: Mapping[str, Any], task_id: str) -> dict[str, Any] | None:
    chain = []
    current: str | None = task_id
    while current is not None:
        node = tasks.get(current)
        if node is None:
            return None
        chain.append(node)
        current = node.get("parent")
    data: dict[str, Any] = {}
    for node in reversed(chain):
        delta = node.get("delta")
        if delta and node.get("parent") is not None:
            data = {**data, **delta.get("updates", {})}
            for key in delta.get("deletions", ()):
                data.pop(key, None)
        else:
            data = dict(node.get("data") or {})
    data.pop("data_objects", None)
    return data


def select(data: Mapping[str, Any], names: tuple[str, ...] | None) -> dict[str, Any]:
    """The named variables (all for None), copied: tasks of one instance share parsed values."""
    chosen = dict(data) if names is None else {n: data[n] for n in names if n in data}
    # A JSON round trip copies plain JSON values several times faster than deepcopy.
    copied: dict[str, Any] = json.loads(json.dumps(chosen))
    return copied
