"""What a lost database connection means for a call (issue 19, docs/guide.md "After a database
restart").

- A **read** that finds its pooled connection dropped (a server restart, a failover, an idle
  timeout) is re-run on a fresh connection: ``retry_read`` on every read method of the Store.
  SQLAlchemy invalidates the whole pool on the first such error, so one more try normally
  suffices; ``READ_ATTEMPTS`` bounds it.
- A **write** that fails before its COMMIT was sent was rolled back: ``NotCommitted`` (nothing
  was written; repeating the call is safe).
- A write whose COMMIT was sent but not answered may or may not be applied: ``CommitUnknown``;
  the caller looks the instance up (by id or business key) before repeating the call.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from engine.core.errors import CommitUnknown, ConcurrencyConflict, NotCommitted, StoreError

F = TypeVar("F", bound=Callable[..., Any])

#: Tries of a read whose connection was dropped (the first included).
READ_ATTEMPTS = 3
#: Pause before the third try, seconds (the server may still be starting).
READ_PAUSE = 0.2

#: Driver errors that may mean the connection is gone.
CONNECTION_ERRORS = (OperationalError, InterfaceError)


def is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def store_error(exc: DBAPIError, *, write: bool) -> StoreError | ConcurrencyConflict:
    """A driver error raised before any COMMIT as the engine's error."""
    code = getattr(exc.orig, "sqlstate", None)
    if code in ("40P01", "40001"):
        # A deadlock or serialization failure: a race the command re-runs.
        return ConcurrencyConflict(f"transaction aborted by the database: {exc.orig}")
    lost = is_disconnect(exc)
    if write:
        why = "the database connection was lost" if lost else f"database error: {exc.orig}"
        return NotCommitted(
            f"{why}; the write was not committed (nothing was written, the call can be repeated)",
            disconnected=lost,
        )
    return StoreError(f"database error: {exc.orig}", disconnected=lost)


def commit_error(exc: DBAPIError) -> StoreError:
    """A driver error raised by the COMMIT itself."""
    if is_disconnect(exc):
        return CommitUnknown(
            f"the database connection was lost during the commit ({exc.orig}); the write may "
            "or may not have been applied: look it up before repeating the call",
            disconnected=True,
        )
    return NotCommitted(f"the commit failed: {exc.orig}; nothing was written")


def retry_read(fn: F) -> F:
    """Re-run a read method whose pooled connection was dropped, on a fresh one."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(READ_ATTEMPTS):
            try:
                return fn(self, *args, **kwargs)
            except StoreError as exc:
                if (
                    not exc.disconnected
                    or attempt == READ_ATTEMPTS - 1
                    or self.in_locked_transaction()
                ):
                    raise
                if attempt:
                    time.sleep(READ_PAUSE)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper  # type: ignore[return-value]
