"""Helpers of the migration tests: an empty database of either kind, alembic up and down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from engine.storage.store import MIGRATIONS_DIR
from tests.conftest import pg_url

#: The parameters of an ``empty_url`` fixture: SQLite, and PostgreSQL when its server is up.
KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def empty_url(kind: str, tmp_path: Path, schema: str) -> Iterator[str]:
    """A database without tables: a SQLite file, or a PostgreSQL schema dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    base = pg_url()
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{base}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def migrate(url: str, revision: str, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    db = sa.create_engine(url)
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
    db.dispose()
