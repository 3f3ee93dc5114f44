"""Migration 0009 on a database holding open user tasks: the candidates get their task's
``created_at`` and the candidate task list reads the new index, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine import ProcessEngine
from engine.storage.schema import metadata
from engine.storage.store import VERSION_TABLE
from tests import migrations

SCHEMA = "sw_migration_0009"


@pytest.fixture(params=migrations.KINDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from migrations.empty_url(request.param, tmp_path, SCHEMA)


def test_candidates_get_their_task_time_and_the_list_works(empty_url: str) -> None:
    migrations.migrate(empty_url, "0008")
    created = [datetime(2026, 1, day, 9, tzinfo=UTC) for day in (3, 1, 2)]
    db = sa.create_engine(empty_url)
    old = sa.MetaData()
    old.reflect(db, only=["sw_user_tasks", "sw_task_candidates"])
    tasks, candidates = old.tables["sw_user_tasks"], old.tables["sw_task_candidates"]
    with db.begin() as conn:
        for n, when in enumerate(created):
            conn.execute(
                tasks.insert().values(
                    id=f"t{n}",
                    instance_id=f"i{n}",
                    task_id=f"s{n}",
                    activity_id="Approve",
                    process_key="order",
                    candidate_users=["ann"],
                    candidate_groups=["clerks"],
                    priority=50,
                    rev=1,
                    created_at=when,
                )
            )
            for kind, name in (("user", "ann"), ("group", "clerks")):
                conn.execute(
                    candidates.insert().values(
                        task_id=f"t{n}", kind=kind, name=name, instance_id=f"i{n}"
                    )
                )
        # A candidate row whose task is gone (no listing ever showed it).
        conn.execute(
            candidates.insert().values(task_id="gone", kind="user", name="ann", instance_id="x")
        )
    db.dispose()

    migrations.migrate(empty_url, "head")
    eng = ProcessEngine(empty_url)
    with eng.store.transaction(write=False) as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []
        rows = conn.execute(
            sa.text("SELECT task_id, created_at FROM sw_task_candidates ORDER BY task_id, kind")
        ).all()
        same = conn.execute(
            sa.text(
                "SELECT count(*) FROM sw_task_candidates c JOIN sw_user_tasks u"
                " ON u.id = c.task_id WHERE c.created_at = u.created_at"
            )
        ).scalar()
    assert [r[0] for r in rows] == ["t0", "t0", "t1", "t1", "t2", "t2"]  # the orphan dropped
    assert same == 6  # every candidate holds its task's time
    assert [t.id for t in eng.tasks(candidate_group="clerks", limit=2)] == ["t1", "t2"]
    assert [t.id for t in eng.tasks(candidate_user="ann", limit=5)] == ["t1", "t2", "t0"]
    eng.close()

    migrations.migrate(empty_url, "0008", down=True)  # and back: the old shape, rows kept
    db = sa.create_engine(empty_url)
    assert "created_at" not in {c["name"] for c in sa.inspect(db).get_columns("sw_task_candidates")}
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM sw_task_candidates")).scalar() == 6
    db.dispose()
