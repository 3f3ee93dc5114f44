"""Reads the REST API needs that the engine's Python API has no call for (deployments and
definitions as lists), as plain statements over the engine's tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.engine import ProcessEngine
from engine.storage import schema as t


def deployments(
    engine: ProcessEngine,
    deployment_id: str | None = None,
    name: str | None = None,
    source: str | None = None,
) -> list[dict[str, Any]]:
    d = t.deployments
    query = sa.select(d).order_by(d.c.created_at, d.c.id)
    if deployment_id is not None:
        query = query.where(d.c.id == deployment_id)
    if name is not None:
        query = query.where(d.c.name == name)
    if source is not None:
        query = query.where(d.c.source == source)
    with engine.store.transaction(write=False) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def definitions(
    engine: ProcessEngine,
    *,
    key: str | None = None,
    definition_id: str | None = None,
    deployment_id: str | None = None,
    latest: bool = False,
) -> list[dict[str, Any]]:
    """Definition rows, oldest first; ``latest`` keeps the newest version of each key."""
    x = t.definitions
    query = sa.select(x).order_by(x.c.key, x.c.version)
    if key is not None:
        query = query.where(x.c.key == key)
    if definition_id is not None:
        query = query.where(x.c.id == definition_id)
    if deployment_id is not None:
        query = query.where(x.c.deployment_id == deployment_id)
    with engine.store.transaction(write=False) as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    if latest:
        newest: dict[str, dict[str, Any]] = {}
        for row in rows:
            newest[row["key"]] = row
        rows = list(newest.values())
    return rows
