"""The console's read models: what each page shows, as a few statements over the engine's tables.

Reads only; every change goes through the engine's verbs (``engine.http.console.actions``).
Lists are bounded: the instance list pages by keyset on ``(created_at, id)`` newest first (an
index per filter, migration 0005), so page 1000 costs what page 1 costs; the other lists show
the first ``LIST_LIMIT`` rows and say so.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.core.errors import InvalidArgument
from engine.core.values import INSTANCE_STATES
from engine.engine import ProcessEngine
from engine.storage import schema as t

#: Instances per page of the instance list.
PAGE_SIZE = 50
#: Rows shown at most by the other lists (incidents, jobs, external tasks, user tasks).
LIST_LIMIT = 200
RUNNING = ("active", "incident")

_INSTANCE_COLUMNS = [c for c in t.instances.c if c.name not in ("data", "open_activities")]


# -- processes ------------------------------------------------------------------------------


@dataclass
class ProcessSummary:
    key: str
    latest: dict[str, Any]
    versions: list[dict[str, Any]] = field(default_factory=list)
    running: int = 0
    incidents: int = 0


def processes(engine: ProcessEngine) -> list[ProcessSummary]:
    """Every deployed key with its versions (newest first) and counts of running instances
    and of instances with an open incident."""
    d, i = t.definitions, t.instances
    counts = (
        sa.select(i.c.process_key, i.c.state, sa.func.count().label("n"))
        .where(i.c.state.in_(RUNNING))
        .group_by(i.c.process_key, i.c.state)
    )
    with engine.store.transaction(write=False) as conn:
        query = sa.select(d).order_by(d.c.key, d.c.version)
        defs = [dict(r) for r in conn.execute(query).mappings()]
        tallies = [tuple(r) for r in conn.execute(counts)]
    found: dict[str, ProcessSummary] = {}
    for row in defs:
        summary = found.setdefault(row["key"], ProcessSummary(row["key"], row))
        summary.latest = row
        summary.versions.insert(0, row)
    for key, state, n in tallies:
        if key in found:
            found[key].running += int(n)
            if state == "incident":
                found[key].incidents += int(n)
    return list(found.values())


def definition(engine: ProcessEngine, key: str, version: int | None) -> dict[str, Any] | None:
    d = t.definitions
    query = sa.select(d).where(d.c.key == key)
    query = query.where(d.c.version == version) if version is not None else query
    query = query.order_by(d.c.version.desc()).limit(1)
    with engine.store.transaction(write=False) as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def diagram_xml(engine: ProcessEngine, definition_id: str) -> bytes | None:
    """The BPMN document a definition was deployed from (what the viewer draws)."""
    d, r = t.definitions, t.resources
    query = (
        sa.select(r.c.content)
        .select_from(d.join(r, sa.and_(r.c.deployment_id == d.c.deployment_id)))
        .where(d.c.id == definition_id, r.c.name == d.c.resource)
    )
    with engine.store.transaction(write=False) as conn:
        content = conn.execute(query).scalar()
    return bytes(content) if content is not None else None


@dataclass
class ActivityCount:
    waiting: int = 0
    incidents: int = 0


def activity_counts(engine: ProcessEngine, definition_id: str) -> dict[str, ActivityCount]:
    """Per BPMN activity of one definition: tokens of running instances waiting there (their
    open history rows) and open incidents."""
    i, h, inc = t.instances, t.history, t.incidents
    running = sa.and_(i.c.definition_id == definition_id, i.c.ended_at.is_(None))
    tokens = (
        sa.select(h.c.activity_id, sa.func.count())
        .select_from(i.join(h, h.c.instance_id == i.c.id))
        .where(running, h.c.ended_at.is_(None))
        .group_by(h.c.activity_id)
    )
    failures = (
        sa.select(inc.c.activity_id, sa.func.count())
        .select_from(i.join(inc, inc.c.instance_id == i.c.id))
        .where(running, inc.c.resolved_at.is_(None))
        .group_by(inc.c.activity_id)
    )
    counts: dict[str, ActivityCount] = {}
    with engine.store.transaction(write=False) as conn:
        for activity, n in conn.execute(tokens):
            counts.setdefault(activity, ActivityCount()).waiting = int(n)
        for activity, n in conn.execute(failures):
            counts.setdefault(activity, ActivityCount()).incidents = int(n)
    return counts


def activities(engine: ProcessEngine, definition_row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(id, label)`` of the definition's flow nodes, sorted by label: the choices of the
    modification form."""
    model = engine.commands.model(definition_row)
    seen: dict[str, str] = {}
    for spec in model.all_task_specs():
        bpmn_id = getattr(spec, "bpmn_id", None)
        if not bpmn_id or bpmn_id == model.key:
            continue
        name = getattr(spec, "bpmn_name", None)
        seen.setdefault(bpmn_id, f"{name} ({bpmn_id})" if name else bpmn_id)
    return sorted(seen.items(), key=lambda item: item[1].lower())


# -- instances --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceFilter:
    process_key: str | None = None
    state: str | None = None
    business_key: str | None = None
    variable: str | None = None
    #: The value ``variable`` must have: JSON when it parses as JSON, else the text itself.
    value: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in (*INSTANCE_STATES, "running"):
            raise InvalidArgument(
                f"state must be one of {', '.join((*INSTANCE_STATES, 'running'))}, "
                f"got {self.state!r}",
                argument="state",
            )

    def query_args(self) -> dict[str, str]:
        names = ("process_key", "state", "business_key", "variable", "value")
        return {k: v for k in names if (v := getattr(self, k)) is not None}


def encode_cursor(created_at: datetime, instance_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, instance_id = json.loads(raw)
        return datetime.fromisoformat(at), str(instance_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidArgument(f"not a page cursor: {cursor[:40]!r}", argument="after") from exc


def _variable_condition(name: str, text: str) -> sa.ColumnElement[bool]:
    try:
        wanted: Any = json.loads(text)
    except ValueError:
        wanted = text
    value = t.instances.c.variables[name]
    condition: sa.ColumnElement[bool]
    if isinstance(wanted, bool):
        condition = value.as_boolean() == wanted
    elif isinstance(wanted, int):
        condition = value.as_integer() == wanted
    elif isinstance(wanted, float):
        condition = value.as_float() == wanted
    elif isinstance(wanted, str):
        condition = value.as_string() == wanted
    else:
        raise InvalidArgument(
            f"variable {name!r}: filter by a string, number or boolean, got {text[:40]!r}",
            argument="value",
        )
    return condition


@dataclass
class InstancePage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def instance_page(
    engine: ProcessEngine, where: InstanceFilter, after: str | None, size: int = PAGE_SIZE
) -> InstancePage:
    """One page of instances, newest first, after the ``after`` cursor (keyset paging: an
    index range scan whatever the page number)."""
    i = t.instances
    query = sa.select(*_INSTANCE_COLUMNS).order_by(i.c.created_at.desc(), i.c.id.desc())
    if where.process_key:
        query = query.where(i.c.process_key == where.process_key)
    if where.state == "running":
        query = query.where(i.c.state.in_(RUNNING))
    elif where.state:
        query = query.where(i.c.state == where.state)
    if where.business_key:
        query = query.where(i.c.business_key == where.business_key)
    if where.variable:
        query = query.where(_variable_condition(where.variable, where.value or ""))
    if after:
        at, last_id = decode_cursor(after)
        # A row-value comparison: both SQLite and PostgreSQL read it as one index range.
        query = query.where(sa.tuple_(i.c.created_at, i.c.id) < sa.tuple_(at, last_id))
    with engine.store.transaction(write=False) as conn:
        rows = [dict(r) for r in conn.execute(query.limit(size + 1)).mappings()]
    more = len(rows) > size
    rows = rows[:size]
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return InstancePage(rows, cursor)


def open_activities(engine: ProcessEngine, instance_id: str) -> list[str]:
    """Where the instance's tokens are (its open history rows), sorted."""
    h = t.history
    query = (
        sa.select(h.c.activity_id)
        .where(h.c.instance_id == instance_id, h.c.ended_at.is_(None))
        .distinct()
    )
    with engine.store.transaction(write=False) as conn:
        return sorted(str(a) for a in conn.execute(query).scalars())


# -- incidents, jobs, external tasks, user tasks ------------------------------------------------


@dataclass
class IncidentGroup:
    activity_id: str
    error: str
    incidents: list[dict[str, Any]]


def _rows(engine: ProcessEngine, query: sa.Select[Any]) -> list[dict[str, Any]]:
    """The rows of one read-only query, as plain dicts."""
    with engine.store.transaction(write=False) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def error_line(message: str) -> str:
    """The first line of an incident message: what groups incidents."""
    return (message or "").strip().splitlines()[0][:300] if (message or "").strip() else ""


def open_incidents(engine: ProcessEngine, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    inc, i = t.incidents, t.instances
    query = (
        sa.select(inc, i.c.process_key, i.c.business_key)
        .select_from(inc.outerjoin(i, i.c.id == inc.c.instance_id))
        .where(inc.c.resolved_at.is_(None))
        .order_by(inc.c.created_at, inc.c.id)
        .limit(limit)
    )
    return _rows(engine, query)


def group_incidents(rows: Iterable[Mapping[str, Any]]) -> list[IncidentGroup]:
    """Incidents by (activity, first line of the error), biggest group first."""
    groups: dict[tuple[str, str], IncidentGroup] = {}
    for row in rows:
        key = (str(row["activity_id"]), error_line(str(row["message"])))
        groups.setdefault(key, IncidentGroup(*key, [])).incidents.append(dict(row))
    return sorted(groups.values(), key=lambda g: (-len(g.incidents), g.activity_id, g.error))


def failed_jobs(engine: ProcessEngine, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """Jobs whose last attempt failed (retrying, or out of retries), soonest due first."""
    j, i = t.jobs, t.instances
    query = (
        sa.select(j, i.c.process_key)
        .select_from(j.outerjoin(i, i.c.id == j.c.instance_id))
        .where(j.c.last_error.is_not(None))
        .order_by(j.c.due_at, j.c.id)
        .limit(limit)
    )
    return _rows(engine, query)


def external_tasks(
    engine: ProcessEngine, instance_id: str | None = None, limit: int = LIST_LIMIT
) -> list[dict[str, Any]]:
    x = t.external_tasks
    query = sa.select(x).where(x.c.state != "completed").order_by(x.c.created_at, x.c.id)
    if instance_id is not None:
        query = query.where(x.c.instance_id == instance_id)
    return _rows(engine, query.limit(limit))


def jobs_of(engine: ProcessEngine, instance_id: str) -> list[dict[str, Any]]:
    j = t.jobs
    query = sa.select(j).where(j.c.instance_id == instance_id).order_by(j.c.due_at, j.c.id)
    return _rows(engine, query.limit(LIST_LIMIT))


def user_tasks(
    engine: ProcessEngine,
    *,
    instance_id: str | None = None,
    assignee: str | None = None,
    limit: int = LIST_LIMIT,
) -> list[dict[str, Any]]:
    """Open user tasks, oldest first, with their instance's business key."""
    u, i = t.user_tasks, t.instances
    query = (
        sa.select(u, i.c.business_key, i.c.suspended)
        .select_from(u.join(i, i.c.id == u.c.instance_id))
        .order_by(u.c.created_at, u.c.id)
    )
    if instance_id is not None:
        query = query.where(u.c.instance_id == instance_id)
    if assignee:
        query = query.where(u.c.assignee == assignee)
    return _rows(engine, query.limit(limit))


def incidents_of(engine: ProcessEngine, instance_id: str) -> list[dict[str, Any]]:
    inc = t.incidents
    query = (
        sa.select(inc)
        .where(inc.c.instance_id == instance_id, inc.c.resolved_at.is_(None))
        .order_by(inc.c.created_at, inc.c.id)
    )
    return _rows(engine, query)
