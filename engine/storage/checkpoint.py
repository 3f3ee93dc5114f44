"""SQLite WAL checkpoints off the hot path.

In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them back into
the database file and, with ``synchronous=NORMAL``, is the only moment SQLite calls fsync. By
default the connection whose commit makes the WAL pass 1,000 pages runs that checkpoint inside
its own commit: every few hundred engine calls one of them took several milliseconds more
(the p99 of ``start()`` was five to eight times its median).

Here the engine's connections checkpoint automatically only past ``FALLBACK_PAGES`` (a bound
on the WAL's size should this thread fall behind), and a ``Checkpointer`` thread runs
``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of its own once ``EVERY_COMMITS`` commits
were made or ``INTERVAL`` seconds after the last commit. PASSIVE never waits for readers or
writers, so the calls of other threads go on meanwhile (sqlite3 releases the GIL while
SQLite works). The thread starts with the first commit and ends after ``IDLE_EXIT`` seconds
without one, so an idle or forgotten engine holds no thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("spillway.storage")

#: ``wal_autocheckpoint`` of the engine's own connections: the WAL's bound (pages of 4 KiB).
FALLBACK_PAGES = 10_000
#: Commits after which the thread checkpoints at once.
EVERY_COMMITS = 200
#: Seconds after a commit within which the thread checkpoints anyway.
INTERVAL = 0.5
#: Seconds without a commit after which the thread ends (it starts again with the next one).
IDLE_EXIT = 5.0


class Checkpointer:
    """Checkpoints one SQLite file's WAL from a thread of its own (see module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._commits = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Checkpoints run (for tests and the benchmarks' notes).
        self.runs = 0

    @property
    def running(self) -> bool:
        """Whether the thread is alive now (it ends when idle and starts with a commit)."""
        with self._lock:
            return self._thread is not None

    def committed(self) -> None:
        """A write transaction of this process committed (called on its thread: cheap)."""
        with self._lock:
            if self._closed:
                return
            self._commits += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="spillway-wal-checkpoint", daemon=True
                )
                self._thread.start()
            elif self._commits >= EVERY_COMMITS:
                self._wake.notify()

    def close(self) -> None:
        """Stop the thread after a last checkpoint."""
        with self._lock:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=0")
            while True:
                with self._lock:
                    if not self._commits and not self._closed:
                        self._wake.wait(IDLE_EXIT)
                    if not self._commits and not self._closed:
                        self._thread = None  # idle: the next commit starts a new thread
                        return
                    if self._commits < EVERY_COMMITS and not self._closed:
                        self._wake.wait(INTERVAL)
                    self._commits = 0
                    closed = self._closed
                self._checkpoint(conn)
                if closed:
                    return
        except sqlite3.Error as exc:
            # The database file went away (a test's temporary folder, say): nothing to do.
            log.debug("WAL checkpointer of %s stops: %s", self.path, exc)
        finally:
            if conn is not None:
                conn.close()
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.runs += 1
        except sqlite3.OperationalError as exc:
            # Another process checkpoints at this moment (SQLITE_BUSY): its work is ours.
            log.debug("WAL checkpoint of %s skipped: %s", self.path, exc)


__all__ = ["EVERY_COMMITS", "FALLBACK_PAGES", "Checkpointer"]
