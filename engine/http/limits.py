"""Request bodies: size caps (an ASGI middleware) and JSON reading with a depth cap.

A deployment (``POST .../deployment/create``) may carry up to ``max_deployment_bytes``; every
other body up to ``max_json_bytes``. The cap is checked against ``Content-Length`` first and
then while the body streams in, so a chunked upload cannot get past it. JSON deeper than
``max_json_depth`` is refused before it reaches the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.http.errors import JSON, InvalidRequest, PayloadTooLarge, error_body

DEFAULT_MAX_JSON_BYTES = 1 * 1024 * 1024
DEFAULT_MAX_DEPLOYMENT_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class Limits:
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    max_deployment_bytes: int = DEFAULT_MAX_DEPLOYMENT_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    def for_path(self, path: str) -> int:
        return (
            self.max_deployment_bytes
            if path.endswith("/deployment/create")
            else (self.max_json_bytes)
        )


class BodyLimit:
    """ASGI middleware answering 413 to bodies over the cap of their path."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.limits.for_path(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > cap:
                    await _too_large(send, cap)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise PayloadTooLarge(f"request body larger than {cap} bytes")
            return message

        await self.app(scope, limited, send)


async def _too_large(send: Send, cap: int) -> None:
    body = json.dumps(
        error_body("InvalidRequestException", f"request body larger than {cap} bytes")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", JSON.encode()), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_json(request: Request, *, required: bool = False) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}`` unless ``required``."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise InvalidRequest("a JSON body is required")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON") from None
    limits: Limits = request.app.state.limits
    check_depth(body, limits.max_json_depth)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def check_depth(value: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise InvalidRequest(f"the JSON body is nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)
