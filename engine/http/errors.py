"""Error bodies as Camunda 7 writes them: ``{"type", "message", "code"}`` with its status codes.

``type`` is the Camunda exception class a client would see for the same mistake; ``code`` is
Camunda's error code (0 generic, 1 optimistic locking) for engine errors and null for errors of
the request itself. Unexpected exceptions are logged with their traceback and answered with a
generic 500: no stack trace or exception text leaves the server.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.core.errors import (
    ConcurrencyConflict,
    CorrelationError,
    DeploymentError,
    EngineError,
    HandlerError,
    LockLost,
    NotFound,
    StoreError,
)

log = logging.getLogger("spillway.http")

JSON = "application/json"


class RestError(Exception):
    """An error of the request, answered with ``status`` and a Camunda error body."""

    status = 400
    type_name = "InvalidRequestException"

    def __init__(self, message: str, *, status: int | None = None, type_name: str = "") -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type_name:
            self.type_name = type_name


class InvalidRequest(RestError):
    """400: the body or a parameter is malformed."""


class NotFoundError(RestError):
    status = 404


class Unauthorized(RestError):
    status = 401
    type_name = "AuthenticationException"


class PayloadTooLarge(RestError):
    status = 413


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer whose content-type is exactly ``application/json`` (the JavaScript client
    parses a body only when the header is that string, without a charset)."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return Response(text.encode("utf-8"), status, headers=headers, media_type=JSON)


def no_content() -> Response:
    return Response(status_code=204)


def error_body(type_name: str, message: str, code: int | None = None) -> dict[str, Any]:
    return {"type": type_name, "message": message, "code": code}


def _engine_error(exc: EngineError) -> tuple[int, str, int | None]:
    name = type(exc).__name__
    if isinstance(exc, NotFound):
        return 404, "InvalidRequestException", None
    if isinstance(exc, ConcurrencyConflict):
        return 500, "OptimisticLockingException", 1
    if isinstance(exc, StoreError | HandlerError):
        return 500, "ProcessEngineException", 0
    if isinstance(exc, LockLost):
        return 400, "BadUserRequestException", 0
    if isinstance(exc, DeploymentError):
        return 400, "ParseException", 0
    if isinstance(exc, CorrelationError):
        return 400, "MismatchingMessageCorrelationException", 0
    if name == "InstanceSuspended":
        return 400, "SuspendedEntityInteractionException", 0
    if name == "TaskClaimed":
        return 400, "TaskAlreadyClaimedException", 0
    return 400, "BadUserRequestException", 0


def to_response(exc: BaseException) -> Response:
    """The answer to any exception raised while serving a request."""
    if isinstance(exc, RestError):
        return json_response(error_body(exc.type_name, exc.message), exc.status)
    if isinstance(exc, EngineError):
        status, type_name, code = _engine_error(exc)
        if status >= 500:
            log.error("request failed: %s: %s", type(exc).__name__, exc)
        return json_response(error_body(type_name, exc.message, code), status)
    if isinstance(exc, HTTPException):
        type_name = "NotFoundException" if exc.status_code == 404 else "RestException"
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404:
            message = "no such resource"
        headers = dict(exc.headers) if exc.headers else None
        return json_response(error_body(type_name, message), exc.status_code, headers)
    log.error("request failed with an unexpected error", exc_info=exc)
    return json_response(
        error_body("ProcessEngineException", "internal server error; see the server log", 0), 500
    )


async def handle(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for every exception class."""
    return to_response(exc)


class CatchAll:
    """ASGI middleware: an exception no handler took becomes the generic 500 body (logged with
    its traceback here), so neither a stack trace nor a dropped connection reaches a client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:
                log.error("request failed after its response started", exc_info=exc)
                return
            await to_response(exc)(scope, receive, send)
