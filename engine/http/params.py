"""Reading request parameters the way Camunda's REST API does: camelCase names, booleans as
``true``/``false``, paging with ``firstResult`` / ``maxResults``, explicit JSON nulls meaning
"not given"."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from engine.engine import ProcessEngine
from engine.http.errors import InvalidRequest

T = TypeVar("T")

MAX_RESULTS = 10_000  # per page when maxResults is not given


def engine_of(request: Request) -> ProcessEngine:
    engine: ProcessEngine = request.app.state.engine
    return engine


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking engine call in the thread pool."""
    return await run_in_threadpool(fn, *args, **kwargs)


def query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise InvalidRequest(f"query parameter {name} must be true or false, got {raw!r}")


def query_int(request: Request, name: str, minimum: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"query parameter {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise InvalidRequest(f"query parameter {name} must be >= {minimum}, got {value}")
    return value


def query_str(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    return raw if raw else None


def query_list(request: Request, name: str) -> list[str] | None:
    """Camunda's comma-separated lists (``processInstanceIds=a,b``)."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    return [part for part in raw.split(",") if part]


def page(request: Request, items: Sequence[T]) -> list[T]:
    first = query_int(request, "firstResult") or 0
    size = query_int(request, "maxResults")
    end = first + (MAX_RESULTS if size is None else size)
    return list(items[first:end])


def field(
    body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    """``body[name]`` checked against ``kind``; missing or null -> ``default``."""
    value = body.get(name)
    if value is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InvalidRequest(f"{name} must be {_article(names)}, got {value!r}"[:200])
    return value


def required(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = field(body, name, kind)
    if value is None or value == "":
        raise InvalidRequest(f"{name} is required")
    return value


def millis(body: Mapping[str, Any], name: str, default: float | None = None) -> float | None:
    """A duration in milliseconds (Camunda's unit) as seconds."""
    value = field(body, name, (int, float))
    if value is None:
        return default
    if value < 0:
        raise InvalidRequest(f"{name} must be >= 0 milliseconds, got {value!r}")
    return float(value) / 1000.0


def _article(names: str) -> str:
    mapping = {
        "str": "a string",
        "int": "an integer",
        "bool": "a boolean",
        "list": "a list",
        "dict": "an object",
        "int/float": "a number",
    }
    return mapping.get(names, names)
