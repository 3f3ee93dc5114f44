"""The documented limits of what the engine stores, checked before anything is written.

Both databases get the same rules (docs/security.md): SQLite would store a NUL character, a
lone surrogate or a 10 MB business key that PostgreSQL refuses, so the engine refuses them
first, with the same ``EngineError`` on both, naming the argument.

- Identifiers (process keys, element ids, business keys, message, signal and topic names,
  worker ids): a ``str`` of at most ``MAX_NAME_LENGTH`` characters, without NUL characters or
  lone surrogates.
- Ids the engine handed out (instances, jobs, incidents, tasks): a ``str``; anything else is
  refused as an argument, an unknown id is ``NotFound``.
- Counts (``retries``): an ``int`` from 0 (or 1) to ``MAX_COUNT``.
"""

from __future__ import annotations

import re
from typing import Any

from engine.core.errors import InvalidArgument

#: Longest identifier or business key, in characters (the database columns' width).
MAX_NAME_LENGTH = 255
#: Longest id the engine hands out (instances, jobs, tasks: 32 hex digits today).
MAX_ID_LENGTH = 64
#: Largest retry count (the database column is a 32-bit integer).
MAX_COUNT = 2**31 - 1

_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def bad_character(text: str) -> str | None:
    """Why ``text`` cannot be stored on every database, or None."""
    found = _BAD_CHARACTER.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"contains a NUL character at position {found.start()}"
    return f"contains a lone surrogate (\\u{ord(found.group()):04x}) at position {found.start()}"


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` for an error message: shortened, and never failing (an integer of more
    than 4,300 digits, an object whose ``__repr__`` raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<an integer of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a message must not fail on a hostile value
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 3] + "..."


def check_name(value: Any, argument: str, *, optional: bool = False) -> Any:
    """An identifier or business key: a non-empty str within the limits (None if optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(
            f"{argument} must be a string, got {type(value).__name__} {shown(value)}",
            argument=argument,
        )
    if not value:
        raise InvalidArgument(f"{argument} must not be empty", argument=argument)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"{argument} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}",
            argument=argument,
        )
    why = bad_character(value)
    if why is not None:
        raise InvalidArgument(f"{argument} {why}", argument=argument)
    return value


def check_id(value: Any, argument: str) -> str:
    """An id the engine handed out: a str (an unknown one is the caller's NotFound)."""
    if not isinstance(value, str):
        raise InvalidArgument(
            f"{argument} must be a string id, got {type(value).__name__} {shown(value)}",
            argument=argument,
        )
    why = bad_character(value)
    if why is not None:
        raise InvalidArgument(f"{argument} {why}", argument=argument)
    return value


def is_plausible_id(value: str) -> bool:
    """False for a string no stored id can equal (the lookup may answer NotFound at once)."""
    return 0 < len(value) <= MAX_ID_LENGTH * 8


def check_count(value: Any, argument: str, minimum: int = 0) -> int:
    """A count such as ``retries``: an int from ``minimum`` to MAX_COUNT."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(
            f"{argument} must be an int, got {type(value).__name__} {shown(value)}",
            argument=argument,
        )
    if not minimum <= value <= MAX_COUNT:
        raise InvalidArgument(
            f"{argument} must be between {minimum} and {MAX_COUNT}, got {shown(value)}",
            argument=argument,
        )
    return value


def check_limit(value: Any, argument: str = "limit") -> int | None:
    """A listing's ``limit``: None (everything) or a count of at least 1."""
    return None if value is None else check_count(value, argument, minimum=1)


def check_text(value: Any, argument: str) -> str:
    """Free text stored in a text column (an error message): NUL and lone surrogates are
    replaced (U+FFFD), so a worker's report is never lost to one byte."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - e.g. an integer of more than 4,300 digits
            text = shown(value)
    if bad_character(text) is None:
        return text
    return _BAD_CHARACTER.sub("\ufffd", text)
