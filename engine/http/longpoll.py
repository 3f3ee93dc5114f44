"""Wake-ups for long-polling ``fetchAndLock`` requests, without a thread per request.

A waiting request holds no thread: it awaits an ``asyncio.Event`` of the hub. The hub sets (and
replaces) that event whenever new work may have appeared:

- a commit of this process that created or changed external tasks or jobs (the engine's commit
  listeners, called in the committing thread and handed to the event loop thread-safely);
- a commit of another node: PostgreSQL ``LISTEN``, or a SQLite file's ``data_version``
  (``engine.storage.notify.NotifyListener``, one for the whole server);
- every ``RECHECK_INTERVAL`` seconds a waiting request looks again anyway, which covers tasks
  that only become due later (a failure with a ``retryTimeout``) and missed notifications.

A request takes the current event *before* it fetches, so a commit between its empty fetch
and its wait still wakes it. ``close()`` (server shutdown) wakes everyone for good: pending long
polls answer ``[]`` at once, which is what a worker expects and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from engine.engine import ProcessEngine
from engine.storage.notify import NotifyListener

log = logging.getLogger("spillway.http.longpoll")

RECHECK_INTERVAL = 2.0  # seconds
MAX_ASYNC_RESPONSE_TIMEOUT = 1_800_000  # milliseconds (30 minutes), as Camunda


class LongPollHub:
    def __init__(
        self, engine: ProcessEngine, *, listen: bool = True, recheck: float = RECHECK_INTERVAL
    ) -> None:
        self.engine = engine
        self.listen = listen
        self.recheck = recheck
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._listener: NotifyListener | None = None
        self._pending = False
        #: Requests waiting now (for metrics and tests).
        self.waiting = 0

    # -- lifecycle (the app's lifespan) ---------------------------------------------------

    def start(self) -> None:
        if self._loop is not None:
            return
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.engine.add_listener(self._on_commit)
        if self.listen:
            self._listener = NotifyListener(self.engine.store, self._on_notify, "http").start()

    def ensure_started(self) -> None:
        """Start on first use when no lifespan did (an app mounted inside another Starlette
        app does not get its own lifespan events)."""
        if self._loop is None and not self.closed:
            self.start()

    def close(self) -> None:
        """Answer every pending long poll now and refuse to wait from now on. Idempotent."""
        self.closed = True
        self.engine.remove_listener(self._on_commit)
        if self._listener is not None:
            self._listener.stop(timeout=2.0)
            self._listener = None
        self._wake_now()

    # -- waking ---------------------------------------------------------------------------

    def _on_commit(self, _instance_id: str) -> None:
        self._on_notify()

    def _on_notify(self) -> None:
        loop = self._loop
        if loop is None or self._pending:
            return
        # One scheduled wake-up at a time: thousands of commits a second cost one callback.
        self._pending = True
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(self._wake_now)

    def _wake_now(self) -> None:
        self._pending = False
        event = self._event
        if event is not None:
            if not self.closed:
                self._event = asyncio.Event()
            event.set()

    # -- waiting --------------------------------------------------------------------------

    def ticket(self) -> asyncio.Event:
        """The event the next wake-up sets; take it before looking for work."""
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    async def wait(self, ticket: asyncio.Event, timeout: float) -> None:
        """Until ``ticket`` is set, the hub closes, or ``timeout`` (capped at the recheck
        interval) seconds pass."""
        if self.closed or timeout <= 0:
            return
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ticket.wait(), min(timeout, self.recheck))
        finally:
            self.waiting -= 1
