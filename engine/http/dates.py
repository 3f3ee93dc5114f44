"""Camunda 7's REST date format, ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` (``2026-12-02T19:57:57.123+0000``).

Spillway's times are aware UTC datetimes; they leave as that format in UTC. Incoming dates
(``dueDate`` filters, ``Date`` variables) are read in that format and in ISO 8601 with ``Z`` or
``+00:00``, which is what the JavaScript client writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.http.errors import InvalidRequest


def format_date(value: datetime | None) -> str | None:
    """``2026-12-02T19:57:57.123+0000``; None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_date(text: str, what: str = "date") -> datetime:
    """A date in Camunda's format or ISO 8601; a naive one is taken as UTC."""
    raw = text.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    if len(raw) > 5 and raw[-5] in "+-" and raw[-4:].isdigit():
        raw = raw[:-2] + ":" + raw[-2:]  # +0000 -> +00:00
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(
            f"{what}: cannot parse {text!r}; expected yyyy-MM-dd'T'HH:mm:ss.SSSZ"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
