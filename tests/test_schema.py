"""The schema of a new database (created at once) equals the one the migrations build."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from engine import ProcessEngine
from engine.storage.schema import metadata
from engine.storage.store import MIGRATIONS_DIR, VERSION_TABLE


def test_fresh_schema_is_the_migrated_schema(tmp_path: Path) -> None:
    replayed = sa.create_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with replayed.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with replayed.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), metadata
        )
    replayed.dispose()
    assert diff == []

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    eng = ProcessEngine(url)  # empty database: created from the metadata and stamped
    with eng.store.transaction(write=False) as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        head = ScriptDirectory.from_config(cfg).get_current_head()
        assert ctx.get_current_revision() == head
        assert compare_metadata(ctx, metadata) == []
    eng.close()
    ProcessEngine(url).close()  # opening it again migrates nothing and fails nothing
