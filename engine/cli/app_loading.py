"""``--app module:attribute`` and ``--db``: the engine a command runs on."""

from __future__ import annotations

import importlib
import inspect
import os
import sys

from engine.cli.args import UsageError
from engine.engine import ProcessEngine


def load_engine(db: str | None, app: str | None) -> ProcessEngine:
    """The engine of ``--app module:attribute`` (an engine or a callable returning one, given
    the ``--db`` URL if it takes an argument), else a plain engine on ``--db``."""
    if not app:
        return ProcessEngine(db)
    if ":" not in app:
        raise UsageError(f"--app expects module:attribute, got {app!r}")
    module_name, attr = app.split(":", 1)
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app {app}: cannot import {module_name}: {exc}") from exc
    target = getattr(module, attr, None)
    if target is None:
        raise UsageError(f"--app {app}: {module_name} has no attribute {attr!r}")
    if isinstance(target, ProcessEngine):
        return target
    if callable(target):
        params = inspect.signature(target).parameters
        engine = target(db) if params else target()
        if isinstance(engine, ProcessEngine):
            return engine
    raise UsageError(f"--app {app}: not a ProcessEngine or a callable returning one")
