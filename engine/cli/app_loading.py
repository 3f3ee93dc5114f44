"""``--app module:attribute`` and ``--db``: the engine a command runs on.

The database is the one the command line names: ``--db`` (or ``SPILLWAY_DB``) is handed to an
app that is a callable (``def engine(url=None) -> ProcessEngine``); an app that is an engine
object already has its database, so a ``--db`` naming another one is refused (never silently
another database).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from engine.cli.args import UsageError
from engine.core.errors import EngineError
from engine.engine import ProcessEngine

DEFAULT_URL = "sqlite:///spillway.db"


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def check_db_url(db: str | None) -> sa.URL | None:
    """The parsed ``--db`` URL; UsageError for one SQLAlchemy cannot use."""
    if db is None:
        return None
    try:
        url = sa.make_url(db)
    except ArgumentError:
        raise UsageError(
            f"--db {db!r} is not a database URL (e.g. sqlite:///spillway.db, "
            "postgresql+psycopg://user@host/db)"
        ) from None
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise UsageError(
            f"--db {_shown(url)}: unknown database kind '{url.drivername}' "
            "(sqlite:///file.db, postgresql+psycopg://...)"
        ) from None
    return url


def _open(db: str | None) -> ProcessEngine:
    try:
        return ProcessEngine(db)
    except EngineError:
        raise
    except Exception as exc:
        shown = _shown(sa.make_url(db or DEFAULT_URL))
        raise UsageError(f"--db {shown}: {type(exc).__name__}: {exc}") from exc


def load_engine(db: str | None, app: str | None) -> ProcessEngine:
    """The engine of ``--app module:attribute`` (an engine or a callable returning one, given
    the ``--db`` URL if it takes an argument), else a plain engine on ``--db``."""
    url = check_db_url(db)
    if not app:
        return _open(db)
    if ":" not in app:
        raise UsageError(f"--app expects module:attribute, got {app!r}")
    module_name, attr = app.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # an app module in the working directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app {app}: cannot import {module_name}: {exc}") from exc
    target = getattr(module, attr, None)
    if target is None:
        raise UsageError(f"--app {app}: {module_name} has no attribute {attr!r}")
    if isinstance(target, ProcessEngine):
        engine = target
        if url is not None and _shown(url) != _shown(engine.store.url):
            raise UsageError(
                f"--app {app} is an engine on {_shown(engine.store.url)}, but --db (or "
                f"SPILLWAY_DB) names {_shown(url)}; drop --db, or make {attr} a function "
                "taking the URL"
            )
        return engine
    if callable(target):
        params = inspect.signature(target).parameters
        made = target(db) if params else target()
        if isinstance(made, ProcessEngine):
            if params or url is None or _shown(url) == _shown(made.store.url):
                return made
            raise UsageError(
                f"--app {app} takes no URL and opened {_shown(made.store.url)}, but --db (or "
                f"SPILLWAY_DB) names {_shown(url)}; give {attr} a url parameter"
            )
    raise UsageError(f"--app {app}: not a ProcessEngine or a callable returning one")
