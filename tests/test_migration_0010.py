"""Migration 0010 on a database holding instances, down and up again: the rows stay, the lone
history-by-instance index goes, the business-key index holds keyed instances only; SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine import ProcessEngine
from engine.storage.schema import metadata
from engine.storage.store import VERSION_TABLE
from tests import migrations, query_plans

SCHEMA = "sw_migration_0010"


@pytest.fixture(params=migrations.KINDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from migrations.empty_url(request.param, tmp_path, SCHEMA)


def index_sql(url: str, name: str) -> str | None:
    """The statement that made index ``name``, as the database keeps it (None: no such index)."""
    db = sa.create_engine(url)
    with db.connect() as conn:
        if db.dialect.name == "sqlite":
            query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"
        else:
            query = (
                "SELECT indexdef FROM pg_indexes"
                " WHERE indexname = :n AND schemaname = current_schema()"
            )
        found = conn.execute(sa.text(query), {"n": name}).scalar()
    db.dispose()
    return None if found is None else str(found)


def test_rows_stay_and_the_indexes_lean(empty_url: str) -> None:
    eng = ProcessEngine(empty_url)  # created at head
    query_plans.deploy_scale_processes(eng)
    keyed = eng.start("scale_wait", business_key="order-7")
    other = eng.start("scale_wait")
    eng.close()

    migrations.migrate(empty_url, "0009", down=True)
    assert index_sql(empty_url, "ix_sw_history_instance_id") is not None
    whole = index_sql(empty_url, "ix_sw_instances_business_key")
    assert whole is not None and "NOT NULL" not in whole.upper()

    migrations.migrate(empty_url, "head")
    assert index_sql(empty_url, "ix_sw_history_instance_id") is None
    partial = index_sql(empty_url, "ix_sw_instances_business_key")
    assert partial is not None and "business_key IS NOT NULL" in partial
    incidents = index_sql(empty_url, "ix_sw_incidents_open")
    assert incidents is not None and "resolved_at IS NULL" in incidents
    assert "(created_at, id)" in incidents

    eng = ProcessEngine(empty_url)
    with eng.store.transaction(write=False) as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []
    assert [i.id for i in eng.instances(business_key="order-7")] == [keyed.id]
    assert {i.id for i in eng.instances(process_key="scale_wait")} == {keyed.id, other.id}
    assert eng.history(keyed.id) and eng.history(other.id)
    eng.close()
