"""Wake-ups from other nodes: PostgreSQL ``LISTEN`` on the channel the store ``NOTIFY``s, or,
on a SQLite file, its ``data_version``.

``Store.apply`` sends ``NOTIFY spillway_jobs`` with every commit that creates or changes jobs,
external tasks or outbox rows; a ``NotifyListener`` turns each notification into a call of
``on_notify`` in a daemon thread, reconnecting with capped backoff when the connection drops.
SQLite has no notifications, but ``PRAGMA data_version`` changes whenever another connection
commits to the file: the listener reads it every ``SQLITE_WATCH_INTERVAL`` (microseconds of
work) and calls ``on_notify`` when it moved, so a worker process on the same file wakes within
that interval instead of at the end of its idle wait. Polling stays the safety net: a
notification missed while reconnecting is only a later wake-up.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from engine.storage.store import NOTIFY_CHANNEL, Store

log = logging.getLogger("spillway.notify")

RECONNECT_INITIAL = 0.5  # seconds
RECONNECT_MAX = 10.0  # seconds
SQLITE_WATCH_INTERVAL = 0.05  # seconds


class NotifyListener:
    """Calls ``on_notify()`` whenever another node commits (PostgreSQL: work it announces; a
    SQLite file: any commit); a no-op on an in-memory database."""

    def __init__(self, store: Store, on_notify: Callable[[], None], name: str = "listener") -> None:
        self.store = store
        self.on_notify = on_notify
        self.name = name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    def start(self) -> NotifyListener:
        if self._thread is not None:
            return self
        target: Callable[[], None] | None = None
        if self.store.dialect == "postgresql":
            target = self._loop
        elif self.store.dialect == "sqlite" and self.store.url.database not in (
            None,
            "",
            ":memory:",
        ):
            target = self._watch_sqlite
        if target is not None:
            self._thread = threading.Thread(
                target=target, name=f"spillway-listen-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                conn.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        import psycopg

        url = self.store.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        backoff = RECONNECT_INITIAL
        while not self._stopping.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    backoff = RECONNECT_INITIAL
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.on_notify()
            except Exception as exc:  # noqa: BLE001 - reconnect; polling still runs meanwhile
                if self._stopping.is_set():
                    return
                log.warning("%s: LISTEN failed (%s); retrying in %.1f s", self.name, exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX)
            finally:
                self._conn = None

    def _watch_sqlite(self) -> None:
        path = str(self.store.url.database)
        last: int | None = None
        while not self._stopping.wait(SQLITE_WATCH_INTERVAL):
            try:
                if self._conn is None:
                    # Its own connection: data_version counts commits of *other* connections.
                    self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                log.warning("%s: watching %s failed (%s); retrying", self.name, path, exc)
                with contextlib.suppress(Exception):
                    if self._conn is not None:
                        self._conn.close()
                self._conn = None
                continue
            if last is not None and version != last:
                self.on_notify()
            last = version
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
