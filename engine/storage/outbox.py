"""The transactional outbox: messages committed with the engine's state, published later.

An external task of a *published* topic (``ProcessEngine.publish_topics``) gets an outbox row in
the same transaction that creates the task, so a task never exists without its message and a
rolled-back call leaves neither. A publisher (``bridge.rabbitmq``) reads pending rows after the
commit, hands them to the broker, and deletes them only once the broker confirmed them; a crash
in between leaves them pending and they are published again: delivery is at least once.

The task row itself is created locked for the bridge's worker id until ``lock_duration`` has
passed, so in-engine worker pools of the same topic do not take it meanwhile; once the lock
expires (no answer came back) the task is fetchable again and the bridge publishes it anew.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core import ids
from engine.core.durations import DEFAULT_LOCK_DURATION
from engine.core.errors import EngineError
from engine.storage import schema as t
from engine.storage.store import Store

DEFAULT_BRIDGE_WORKER = "bridge:rabbitmq"
#: Seconds a published task stays locked for the bridge without an answer before it is published
#: again: the engine's one default lock duration.
DEFAULT_PUBLISH_LOCK = DEFAULT_LOCK_DURATION
MESSAGE_FORMAT = 1  # "format" field of a task message, bumped on incompatible changes


@dataclass(frozen=True)
class OutboxRoute:
    """How the external tasks of one published topic are handed to a bridge."""

    worker_id: str = DEFAULT_BRIDGE_WORKER
    lock_duration: float = DEFAULT_PUBLISH_LOCK
    #: Names of the variables a message carries; None carries all of the task's variables.
    variables: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.worker_id:
            raise EngineError("an outbox route needs a worker id")
        if self.lock_duration <= 0:
            raise EngineError(f"lock_duration must be > 0 seconds, got {self.lock_duration}")


def task_message(
    task_row: Mapping[str, Any],
    variables: Mapping[str, Any],
    only: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The message body of an external task (without the reply address, which is the
    publisher's): what an outside worker needs to do the work and answer by task id."""
    chosen = dict(variables) if only is None else {k: variables[k] for k in only if k in variables}
    return {
        "format": MESSAGE_FORMAT,
        "task_id": task_row["id"],
        "topic": task_row["topic"],
        "instance_id": task_row["instance_id"],
        "activity_id": task_row["activity_id"],
        "process_key": task_row["process_key"],
        "business_key": task_row["business_key"],
        "retries": task_row.get("retries"),
        "variables": copy.deepcopy(chosen),
    }


def route_task(
    outbox_rows: list[dict[str, Any]],
    task_row: dict[str, Any],
    variables: Mapping[str, Any],
    route: OutboxRoute,
    now: datetime,
) -> None:
    """Lock a new task row for the bridge (in place) and add its message to the commit's
    outbox rows: one row per commit and topic (``{"messages": [...]}``), so the 50 tasks of a
    multi-instance cost one insert, one claim and one delete, not fifty."""
    task_row["lock_owner"] = route.worker_id
    task_row["lock_expires_at"] = now + timedelta(seconds=route.lock_duration)
    message = task_message(task_row, variables, route.variables)
    for row in outbox_rows:
        if row["channel"] == task_row["topic"]:
            row["payload"]["messages"].append(message)
            return
    outbox_rows.append(
        {
            "id": ids.new_id(),
            "channel": task_row["topic"],
            "payload": {"messages": [message]},
            "created_at": now,
            "published_at": None,
        }
    )


def drop_task(outbox_rows: list[dict[str, Any]], task_id: str) -> None:
    """Take back the message of a task that ended in the commit that created it (in place)."""
    for row in list(outbox_rows):
        messages = [m for m in row["payload"]["messages"] if m["task_id"] != task_id]
        if messages:
            row["payload"]["messages"] = messages
        else:
            outbox_rows.remove(row)


def messages(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The task messages of one outbox row."""
    return list(row["payload"]["messages"])


class OutboxBatch:
    """Pending rows taken by one publisher; ``finish`` deletes those fully published.

    On PostgreSQL the rows stay locked (``FOR UPDATE SKIP LOCKED``) in an open transaction until
    ``finish`` or ``abandon``, so several bridges on one database never publish a row twice
    while each is in flight; a bridge that dies releases them with its connection. On SQLite
    nothing is held (a write transaction would stop the engine for as long as the broker takes),
    so one bridge per database file.
    """

    def __init__(self, store: Store, conn: Connection | None, rows: list[dict[str, Any]]) -> None:
        self._store = store
        self._conn = conn
        self.rows = rows

    def finish(self, published: Sequence[str]) -> None:
        """Delete the rows the broker confirmed; the others stay pending."""
        ids = list(published)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                if ids:
                    conn.execute(t.outbox.delete().where(t.outbox.c.id.in_(ids)))
                conn.commit()
            finally:
                conn.close()
        elif ids:
            with self._store.transaction() as conn:
                conn.execute(t.outbox.delete().where(t.outbox.c.id.in_(ids)))

    def abandon(self) -> None:
        """Publish failed: every row stays pending for the next attempt."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.rollback()
            finally:
                conn.close()


class Outbox:
    """The outbox queries, for publishers and operators."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _pending_query(self, channels: Sequence[str] | None) -> sa.Select[Any]:
        query = sa.select(t.outbox).where(t.outbox.c.published_at.is_(None))
        if channels is not None:
            query = query.where(t.outbox.c.channel.in_(list(channels)))
        return query.order_by(t.outbox.c.created_at, t.outbox.c.id)

    def claim(self, channels: Sequence[str], limit: int) -> OutboxBatch | None:
        """The oldest pending rows of ``channels`` (at most ``limit``), or None when none is
        pending (or all are in flight with another publisher)."""
        query = self._pending_query(channels).limit(limit)
        if self.store.dialect != "postgresql":
            with self.store.transaction(write=False) as conn:
                rows = [dict(r) for r in conn.execute(query).mappings()]
            return OutboxBatch(self.store, None, rows) if rows else None
        conn = self.store.engine.connect()
        try:
            conn.begin()
            rows = [
                dict(r) for r in conn.execute(query.with_for_update(skip_locked=True)).mappings()
            ]
        except BaseException:
            conn.close()
            raise
        if not rows:
            conn.rollback()
            conn.close()
            return None
        return OutboxBatch(self.store, conn, rows)

    def pending(self, channels: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Rows not yet confirmed by a broker, oldest first."""
        with self.store.transaction(write=False) as conn:
            return [dict(r) for r in conn.execute(self._pending_query(channels)).mappings()]
