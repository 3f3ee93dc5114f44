"""Rendering: the Jinja environment, the page response (CSRF cookie, flash message, ETag for
the live poll) and the small formatting helpers the templates use.

Templates autoescape everything; times are rendered as ``<time datetime="...Z">`` in UTC and
the browser's script shows them in the browser's time zone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from engine.http.console import security

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
FLASH_COOKIE = "spillway_flash"
#: The header the page's live-update script sends when it polls the page it shows.
LIVE_HEADER = "x-console-live"
#: What a console page may load and run: only its own files (the bpmn-js viewer draws with
#: inline styles and a data: image for its watermark); never framed by another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: Milliseconds between two polls of a page by its live-update script.
POLL_INTERVAL_MS = 2000


def timestamp(value: datetime | None) -> Markup:
    """``<time>`` in UTC ISO form; the page's script rewrites the text in the browser's zone."""
    if value is None:
        return Markup('<span class="none">-</span>')
    iso = value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    shown = iso.replace("T", " ").replace("Z", " UTC")
    # Both parts are escaped here; Markup only keeps the tag from being escaped again.
    return Markup(f'<time datetime="{escape(iso)}">{escape(shown)}</time>')  # noqa: S704


def as_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, sort_keys=indent is not None, default=str)


def short(value: Any, length: int = 12) -> str:
    text = str(value or "")
    return text if len(text) <= length else text[:length] + "…"


def url(path: str, **params: Any) -> str:
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(query) if query else "")


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(ts=timestamp, json=as_json, short=short)
_env.globals.update(url=url, poll_interval=POLL_INTERVAL_MS)


def user_of(request: Request) -> str | None:
    """The Basic user the request authenticated as (None for a bearer token or no auth)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


def _flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {"kind": str(data.get("kind", "info")), "text": str(data.get("text", ""))}


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """The page: with the CSRF token for its forms, the flash message of the action that led
    here (shown once), and an ETag so that an unchanged page answers the live poll with 304."""
    csrf, new_token = security.token(request)
    live = LIVE_HEADER in request.headers
    flash = None if live else _flash(request)
    body = _env.get_template(template).render(
        request=request,
        csrf=csrf,
        csrf_field=security.FIELD,
        flash=flash,
        nav=context.pop("nav", ""),
        **context,
    )
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    headers = {
        "cache-control": "no-store",
        "etag": etag,
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
    }
    if live and request.headers.get("if-none-match") == etag and status == 200:
        return Response(status_code=304, headers=headers)
    response = HTMLResponse(body, status_code=status, headers=headers)
    if new_token:
        response.set_cookie(
            security.COOKIE, csrf, httponly=True, samesite="strict", path="/", secure=False
        )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(back: str, kind: str, text: str) -> Response:
    """303 back to the page the action came from, with its outcome shown there once."""
    payload = json.dumps({"kind": kind, "text": text[:1500]}).encode()
    response = RedirectResponse(safe_back(back), status_code=303)
    response.set_cookie(
        FLASH_COOKIE,
        base64.urlsafe_b64encode(payload).decode().rstrip("="),
        max_age=120,
        httponly=True,
        samesite="strict",
        path="/",
    )
    return response


def safe_back(back: str | None) -> str:
    """Only a path of this site (never ``//other.host`` or a scheme) is a place to go back to."""
    if not back or not back.startswith("/") or back.startswith("//") or "\\" in back:
        return "/"
    return back
