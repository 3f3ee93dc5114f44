"""``/metrics``: the engine's Prometheus metrics over HTTP, and the timing of every request.

``routes(engine)`` is the ``GET /metrics`` route serving ``engine.metrics`` (an
``engine.work.metrics.EngineMetrics``, the engine's own registry) in Prometheus' text format;
``middleware(engine)`` times every request into ``spillway_http_request_duration_seconds`` by
method, route template (``/engine-rest/process-instance/{id}``, never the raw path, so ids do not
make a series each) and status. ``create_app`` (engine.http.app) installs both; an engine made
with ``metrics=False`` has neither.

``/metrics`` sits behind the same authentication as the API. ``create_app(metrics_auth=
"loopback")`` (``spillway serve --metrics-auth loopback``) lets a scraper on the same host in
without credentials, as a node-local Prometheus agent expects; every other client still needs
them. ``app(engine)`` is the bare metrics app ``spillway worker --metrics-port`` serves.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.core.errors import EngineError
from engine.work.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from engine.engine import ProcessEngine
    from engine.work.metrics import EngineMetrics

PATH = "/metrics"
#: ``metrics_auth`` choices: credentials always, or not for clients on a loopback address.
AUTH_CHOICES = ("required", "loopback")
#: The route label of a request no route matched (a 404, or refused before routing: a 401).
UNMATCHED = "(unmatched)"


def routes(engine: ProcessEngine) -> list[BaseRoute]:
    """``GET /metrics`` for ``engine`` (none when it was made with ``metrics=False``)."""
    metrics = engine.metrics
    if metrics is None:
        return []

    async def serve(_request: Request) -> Response:
        # The scrape reads the database's gauges: off the event loop.
        body = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE)

    return [Route(PATH, serve, methods=["GET"])]


def middleware(engine: ProcessEngine) -> list[Middleware]:
    """The request timer for ``engine``'s app (none without metrics)."""
    if engine.metrics is None:
        return []
    return [Middleware(RequestTimer, metrics=engine.metrics)]


def app(engine: ProcessEngine) -> Starlette:
    """Only ``/metrics``: what a worker without the API serves (``--metrics-port``)."""
    if engine.metrics is None:
        raise EngineError("this engine was made with metrics=False: it has no metrics to serve")
    return Starlette(routes=routes(engine))


def check_auth_choice(choice: str) -> str:
    if choice not in AUTH_CHOICES:
        raise EngineError(f"metrics_auth must be one of {', '.join(AUTH_CHOICES)}, got {choice!r}")
    return choice


def loopback_scrape(scope: Scope) -> bool:
    """A request for ``/metrics`` from a client on a loopback address (``metrics_auth=
    "loopback"`` lets it in without credentials)."""
    if scope.get("path") != scope.get("root_path", "") + PATH:
        return False
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(str(client[0])).is_loopback
    except ValueError:
        return False


def route_template(scope: Scope, root_path: str) -> str:
    """The template of the route that served the request (``/engine-rest/task/{id}``)."""
    route = scope.get("route")
    if route is None or isinstance(route, Mount) or not hasattr(route, "path"):
        return UNMATCHED
    # A mounted app's routes are relative to its mount: the mount's part of root_path first.
    mounted = str(scope.get("root_path", ""))[len(root_path) :]
    return mounted + str(route.path)


class RequestTimer:
    """ASGI middleware: each HTTP request's duration, by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: EngineMetrics) -> None:
        self.app = app
        self.durations = metrics.http_durations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()  # a duration, not logic: the wall clock's monotonic one
        root_path = str(scope.get("root_path", ""))
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            code = status[0] if status else 500
            route = route_template(scope, root_path)
            self.durations(scope["method"], route, str(code)).observe(time.perf_counter() - started)


__all__ = ["AUTH_CHOICES", "PATH", "app", "middleware", "routes"]
