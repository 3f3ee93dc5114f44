"""The ASGI application: Camunda 7's REST API at ``/engine-rest`` and the operator console at
``/`` (``engine.http.console``) over one ``ProcessEngine``.

``create_app(engine)`` is what ``spillway serve`` runs under uvicorn and what
``ProcessEngine.asgi_app()`` returns for mounting in a user's own ASGI service. Its lifespan
starts the long-poll hub (commit listeners and the cross-node NOTIFY / data_version watcher);
the job executor is the caller's (``spillway serve`` runs one beside it).

Starlette, not FastAPI: the API's shapes are Camunda's, not models of ours. Camunda's bodies
take explicit nulls, case-insensitive variable types and loose numbers, and its errors have one
body shape; a request-model layer would fight every one of those and answer 422s in its own
shape. Starlette is small, typed, well kept (the base FastAPI itself builds on), and the
console and metrics routes of Spillway are plain Starlette routes too. The OpenAPI document is
written beside the routes (``engine.http.openapi``) and checked against them by schemathesis.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from engine.core.errors import EngineError
from engine.engine import ProcessEngine
from engine.http import (
    errors,
    metrics,
    openapi,
    rest_deploy,
    rest_external,
    rest_jobs,
    rest_process,
    rest_task,
)
from engine.http.auth import AuthMiddleware, Credentials
from engine.http.console import site as console
from engine.http.errors import json_response
from engine.http.limits import BodyLimit, Limits
from engine.http.longpoll import RECHECK_INTERVAL, LongPollHub
from engine.http.task_index import TaskIndex

REST_PREFIX = "/engine-rest"


def rest_routes() -> list[BaseRoute]:
    """Every route of the REST API, relative to ``/engine-rest``."""
    return [
        *rest_deploy.routes(),
        *rest_process.routes(),
        *rest_external.routes(),
        *rest_task.routes(),
        *rest_jobs.routes(),
        Route("/openapi.json", _openapi, methods=["GET"]),
    ]


async def _openapi(request: Request) -> Response:
    return json_response(openapi.document(request.scope.get("root_path", "") or REST_PREFIX))


def create_app(
    engine: ProcessEngine,
    *,
    auth: str | Credentials | None = None,
    token: str | None = None,
    limits: Limits | None = None,
    listen: bool = True,
    recheck_interval: float = RECHECK_INTERVAL,
    extra_routes: Sequence[BaseRoute] = (),
    metrics_auth: str = "required",
) -> Starlette:
    """The REST API of ``engine`` as an ASGI app.

    ``auth``: ``"user:password"`` (or ``Credentials``) for HTTP Basic on every path; ``token``:
    a bearer token accepted too. ``limits``: body caps (``engine.http.limits.Limits``).
    ``listen``: wake long polls on other nodes' commits (PostgreSQL LISTEN / SQLite
    data_version); ``recheck_interval``: seconds after which a waiting long poll looks again
    without a wake-up (tasks that fall due later). ``extra_routes``: more routes at the root
    (beside ``/engine-rest``). ``metrics_auth``: ``"required"`` (``/metrics`` needs the same
    credentials as the API) or ``"loopback"`` (not from a client on a loopback address);
    without ``auth``/``token`` nothing needs credentials (``engine.http.metrics``).
    """
    metrics.check_auth_choice(metrics_auth)
    credentials = auth if isinstance(auth, Credentials) else Credentials.parse(auth, token)
    hub = LongPollHub(engine, listen=listen, recheck=recheck_interval)
    index = TaskIndex()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        hub.start()
        try:
            yield
        finally:
            hub.close()

    handlers = {
        EngineError: errors.handle,
        errors.RestError: errors.handle,
        HTTPException: errors.handle,
    }
    rest = Starlette(
        routes=rest_routes(),
        middleware=[Middleware(errors.CatchAll)],
        exception_handlers=handlers,
    )
    routes: list[BaseRoute] = [Mount(REST_PREFIX, app=rest)]
    # -- the operator console (engine/http/console/) and /metrics (engine/http/metrics.py)
    #    mount here, each from its ``routes(engine)``:
    routes += metrics.routes(engine)
    routes.extend(extra_routes)
    # The console last: its ``/`` pages never shadow a route given above.
    routes.extend(console.routes(engine))
    middleware = [Middleware(errors.CatchAll), Middleware(BodyLimit, limits=limits or Limits())]
    if credentials is not None:
        exempt = metrics.loopback_scrape if metrics_auth == "loopback" else None
        middleware.insert(1, Middleware(AuthMiddleware, credentials=credentials, exempt=exempt))
    # Timed outside authentication, so refused requests count too (route "(unmatched)").
    middleware[1:1] = metrics.middleware(engine)
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=handlers,
    )
    for target in (app, rest):
        target.state.engine = engine
        target.state.hub = hub
        target.state.limits = limits or Limits()
        target.state.task_index = index
    return app


def hub_of(app: Starlette) -> LongPollHub:
    """The long-poll hub of an app made by ``create_app`` (``spillway serve`` closes it first
    on shutdown so pending long polls answer at once)."""
    hub: LongPollHub = app.state.hub
    return hub
