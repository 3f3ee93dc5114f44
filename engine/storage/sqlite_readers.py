"""Per-thread read connections to a SQLite file, for the one-statement reads of every call.

Each ``start()`` reads the id of its key's newest definition. Through the pool that read costs a
checkout, a ``Connection``, the pool's reset on return and the checkin: several times the
statement itself. A SQLite file can be opened by any number of connections and a WAL reader
never blocks on the writer, so each thread here keeps a driver connection of its own, outside
the pool (whose size bounds the connections everything else checks out). In autocommit mode
each statement reads the newest committed state, as a pooled read does.

Only for single statements whose result needs no SQLAlchemy result processing; a thread that
holds a transaction (``Store.locked_instance``) reads through it instead.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from typing import Any


class ThreadReaders:
    """One read connection to ``path`` per thread, closed with the thread or ``close()``."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        #: Every open connection, to close them all at ``close()`` (threads may outlive it).
        self._open: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._closed = False

    def connection(self) -> sqlite3.Connection | None:
        """This thread's connection (opened on first use); None once closed."""
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is not None and not reader.closed:
            return reader.conn
        with self._lock:
            if self._closed:
                return None
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            reader = _Reader(conn)
            self._open.add(reader)
        self._local.reader = reader
        return conn

    def discard(self) -> None:
        """Drop this thread's connection (after an error): the next read opens another."""
        reader: _Reader | None = getattr(self._local, "reader", None)
        self._local.reader = None
        if reader is not None:
            reader.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            readers = list(self._open)
        for reader in readers:
            reader.close()


class _Reader:
    __slots__ = ("__weakref__", "closed", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            # Another thread may close it under a reader mid-statement: that read fails and
            # is retried, as after a lost pooled connection.
            self.conn.close()

    def __del__(self) -> None:
        self.close()


def scalar(conn: sqlite3.Connection, sql: str, params: Any) -> Any:
    """The first column of the statement's first row (None when there is none)."""
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


__all__ = ["ThreadReaders", "scalar"]
