"""CSRF protection of the console's forms: a double-submit token, plus an origin check.

Authentication is the API's (``engine.http.auth``: HTTP Basic or a bearer token, checked by the
app's middleware before any console route runs). Basic credentials are sent by the browser on
every request, also on a form another site makes it post, so every state-changing request
must also prove it came from a page of the console:

- the first page served sets a random token in the cookie ``spillway_csrf`` (``SameSite=Strict``,
  ``HttpOnly``, path ``/``); every form of the console carries the same token in a hidden field
  ``csrf`` (and scripts send it as the ``X-CSRF-Token`` header);
- a POST is refused (403, nothing changed) unless the field (or header) equals the cookie,
  compared in constant time. Another site can make the browser send the cookie but cannot
  read it, so it cannot put the token in the form;
- a POST whose ``Origin`` (or, without one, ``Referer``) names another host than the request's
  is refused as well.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

COOKIE = "spillway_csrf"
FIELD = "csrf"
HEADER = "x-csrf-token"
TOKEN_BYTES = 32


class CsrfRefused(Exception):
    """A state-changing request without a valid token or from another origin."""


def token(request: Request) -> tuple[str, bool]:
    """The request's CSRF token, and whether it is new (to be set as the cookie)."""
    current = request.cookies.get(COOKIE, "")
    if len(current) >= TOKEN_BYTES:
        return current, False
    return secrets.token_urlsafe(TOKEN_BYTES), True


def _same_origin(request: Request) -> bool:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source != "null"
    host = request.headers.get("host", "")
    return urlsplit(source).netloc.lower() == host.lower()


def check(request: Request, submitted: str | None) -> None:
    """Raise ``CsrfRefused`` unless ``submitted`` (the form field, else the header) matches
    the cookie and the request comes from this origin."""
    cookie = request.cookies.get(COOKIE, "")
    given = submitted or request.headers.get(HEADER, "")
    if not cookie or not given:
        raise CsrfRefused("the form's security token is missing")
    if not hmac.compare_digest(cookie.encode(), given.encode()):
        raise CsrfRefused("the form's security token does not match")
    if not _same_origin(request):
        raise CsrfRefused("the request comes from another site")
