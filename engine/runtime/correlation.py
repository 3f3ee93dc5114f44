"""Which instances a message correlates to, and delivering one message to several of them.

``ProcessEngine.correlate_message`` delivers to exactly one waiting instance (or starts the
process whose message start event listens); ``correlate_message_all`` is Camunda's
``correlateAll``: every waiting instance that matches, and the listening process besides, all
in one transaction (``Store.apply_all``), so a failure of one delivery applies none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.core.errors import CorrelationError, NotFound
from engine.core.values import ProcessInstance
from engine.runtime.commands import Commands, check_not_suspended, has_ended
from engine.runtime.run import Run


def waiting(
    commands: Commands,
    name: str,
    criteria: Mapping[str, Any],
    business_key: str | None,
    instance_id: str | None,
    correlation_key: str | None = None,
) -> list[dict[str, Any]]:
    """The rows of the instances waiting for message ``name`` that match (variables equal to
    ``criteria``, the business key, the instance id and the Camunda 8 correlation key of the
    subscription when given), in id order."""
    subs = commands.store.subscribers("message", name)
    if correlation_key is not None:
        subs = [s for s in subs if s.get("correlation_key") == correlation_key]
    ids = sorted({s["instance_id"] for s in subs})
    if instance_id is not None:
        ids = [i for i in ids if i == instance_id]
    rows = commands.store.instances(ids=ids) if ids else []
    return [
        r
        for r in rows
        if (business_key is None or r["business_key"] == business_key)
        and all(r["variables"].get(k) == v for k, v in criteria.items())
    ]


def starter(commands: Commands, name: str) -> dict[str, Any] | None:
    """The latest definition whose own message start event listens for ``name``; None if none
    does; CorrelationError if several do (which one to start is ambiguous)."""
    starters = commands.store.message_start_definitions(name)
    if len(starters) > 1:
        keys = ", ".join(sorted(d["key"] for d in starters))
        raise CorrelationError(f"message '{name}' starts several processes ({keys})")
    return starters[0] if starters else None


def correlate_all(
    commands: Commands,
    name: str,
    values: Mapping[str, Any],
    criteria: Mapping[str, Any],
    business_key: str | None,
    instance_id: str | None,
    correlation_key: str | None = None,
) -> list[ProcessInstance]:
    """Deliver to every matching waiting instance and (without ``instance_id``) start the
    listening process too, in one transaction; the instances as committed (started last).
    Nothing matching is not an error: the list is empty."""

    def attempt() -> list[ProcessInstance]:
        runs: list[tuple[Run, bool]] = []
        for row in waiting(commands, name, criteria, business_key, instance_id, correlation_key):
            try:
                run, has_incident = commands.load(row["id"])
            except NotFound:
                continue  # gone between the two reads
            if has_ended(run):
                continue
            check_not_suspended(run.row)
            run.correlate(name, dict(values))
            runs.append((run, has_incident))
        definition = starter(commands, name) if instance_id is None else None
        if definition is not None:
            run = commands.new_run(definition, {}, business_key)
            run.begin_by_message(name, dict(values))
            runs.append((run, False))
        if not runs:
            return []
        return commands.commit_all(runs)

    return commands.retry_on_conflict(attempt)
