"""The operator verbs of ``ProcessEngine`` (``cancel``, ``set_variables``, ``tasks``, ``claim``...)
that some endpoints call. They come with Spillway's operator API; on an engine without one
the endpoint answers 501 naming the missing verb instead of failing obscurely."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.engine import ProcessEngine
from engine.http.errors import RestError


def verb(engine: ProcessEngine, name: str) -> Callable[..., Any]:
    fn = getattr(engine, name, None)
    if not callable(fn):
        raise RestError(
            f"this Spillway engine has no '{name}' operation",
            status=501,
            type_name="RestException",
        )
    found: Callable[..., Any] = fn
    return found
