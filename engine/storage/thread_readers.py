"""Per-thread read connections (a SQLite file's; PostgreSQL's in autocommit, see below), for
the one-statement reads of every call.

Each ``start()`` reads the id of its key's newest definition. Through the pool that read costs a
checkout, a ``Connection``, the pool's reset on return and the checkin: several times the
statement itself. A SQLite file can be opened by any number of connections and a WAL reader
never blocks on the writer, so each thread here keeps a driver connection of its own. It is
opened by the engine's pool (so the engine's connect hooks set it up, as every other
connection) and detached from it at once, so the pool's size still bounds what everything else
checks out. In autocommit mode each statement reads the newest committed state, as a pooled
read does. When the engine's pool is replaced (``Engine.dispose()``: a test's statement
recorder, or the disconnect handling of ``engine.storage.driver``), each thread opens a new one.

Only for single statements whose result needs no SQLAlchemy result processing; a thread that
holds a transaction (``Store.locked_instance``) reads through it instead.

PostgreSQL uses them too, in autocommit mode (``setup``): the pool's checkout, its autocommit
switch and its reset on return cost several times the read's round trip. Each such connection
is a server connection, so there are at most ``limit`` of them; threads beyond read through
the pool.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa


class ThreadReaders:
    """One read connection per thread, from ``engine``'s current pool; closed when its thread
    ends, when the pool is replaced, or at ``close()``."""

    def __init__(
        self,
        engine: sa.Engine,
        setup: Callable[[Any], None] | None = None,
        limit: int | None = None,
    ) -> None:
        self.engine = engine
        #: Called with each new driver connection before its first read.
        self._setup = setup
        #: Connections open at most (None: one per thread); past it, ``connection()`` is None.
        self._limit = limit
        self._local = threading.local()
        self._lock = threading.Lock()
        #: Every open connection, to close them all at ``close()`` (threads may outlive it).
        self._open: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._closed = False

    def connection(self) -> Any | None:
        """This thread's driver connection (opened on first use); None once closed, or
        when ``limit`` connections are open (the caller reads through the pool)."""
        pool = self.engine.pool
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is not None and not reader.closed:
            if reader.pool is pool:
                return reader.conn
            reader.close()  # opened by a pool since disposed
        with self._lock:
            if self._closed:
                return None
            if self._limit is not None and len(self._open) >= self._limit:
                return None
            proxied = self.engine.raw_connection()
            proxied.detach()
            if self._setup is not None:
                self._setup(proxied.dbapi_connection)
            reader = _Reader(proxied.dbapi_connection, pool)
            self._open.add(reader)
        self._local.reader = reader
        return reader.conn

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
    __slots__ = ("__weakref__", "closed", "conn", "pool")

    def __init__(self, conn: Any, pool: Any) -> None:
        self.conn = conn
        self.pool = pool
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            # Another thread may close it under a reader mid-statement: that read fails and
            # is retried, as after a lost pooled connection.
            self.conn.close()

    def __del__(self) -> None:
        # Its thread ended (the thread-local let go of it): a server connection is not left
        # for the garbage collector.
        self.close()


def scalar(conn: Any, sql: str, params: Any) -> Any:
    """The first column of the statement's first row (None when there is none)."""
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


__all__ = ["ThreadReaders", "scalar"]
