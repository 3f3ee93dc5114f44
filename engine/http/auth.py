"""HTTP Basic (and optionally bearer-token) authentication for the whole app.

Credentials are compared with ``hmac.compare_digest`` on both parts, always both, so the time
an answer takes does not tell how much of a guess was right. Without valid credentials every
path answers 401 with ``WWW-Authenticate: Basic realm="spillway"`` and a Camunda error body.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from engine.core.errors import EngineError
from engine.http.errors import JSON, error_body

REALM = "spillway"


@dataclass(frozen=True)
class Credentials:
    """Who may call the API: a Basic user and password, and/or a bearer token."""

    user: str | None = None
    password: str | None = None
    token: str | None = None

    @classmethod
    def parse(cls, text: str | None, token: str | None = None) -> Credentials | None:
        """``"user:password"`` (the password may contain ':'); None when neither is given."""
        if not text and not token:
            return None
        user = password = None
        if text:
            if ":" not in text:
                raise EngineError("--auth expects user:password")
            user, password = text.split(":", 1)
            if not user or not password:
                raise EngineError("--auth expects a non-empty user and password")
        return cls(user, password, token or None)

    def accepts(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.user is not None and self.password is not None:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, _, password = decoded.partition(":")
            ok_user = hmac.compare_digest(user.encode(), self.user.encode())
            ok_password = hmac.compare_digest(password.encode(), self.password.encode())
            return ok_user and ok_password
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        return False


class AuthMiddleware:
    """``exempt``: requests let in without credentials (``/metrics`` from loopback, when
    ``create_app(metrics_auth="loopback")``)."""

    def __init__(
        self,
        app: ASGIApp,
        credentials: Credentials,
        exempt: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt is not None and self.exempt(scope)):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if self.credentials.accepts(header):
            await self.app(scope, receive, send)
            return
        message = "authentication required" if header is None else "invalid credentials"
        body = json.dumps(error_body("AuthenticationException", message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", JSON.encode()),
                    (b"content-length", b"%d" % len(body)),
                    (b"www-authenticate", f'Basic realm="{REALM}"'.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
