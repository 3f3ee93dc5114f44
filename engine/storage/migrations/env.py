"""Alembic environment: runs on the connection the engine hands over (see engine.storage.store)."""

from __future__ import annotations

from alembic import context

from engine.storage.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` command line (revisions during development)
    from sqlalchemy import create_engine

    url = config.get_main_option("sqlalchemy.url") or "sqlite:///spillway.db"
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()
else:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        version_table="sw_schema_version",
    )
    with context.begin_transaction():
        context.run_migrations()
