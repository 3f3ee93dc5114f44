"""History cleanup: ended instances older than their time to live are deleted with their
history, in batches (``engine.storage.operations``).

The time to live of a process is ``camunda:historyTimeToLive`` on its ``process`` element
(whole days, ``"30"``, or an ISO 8601 duration, ``"P30D"``, ``"PT12H"``), else the engine's
``history_time_to_live`` option (seconds or a ``timedelta``); neither means the history is kept.
An instance is removed once ``ended_at + ttl`` has passed.

``HistoryCleaner`` runs the cleanup periodically on a thread of its own (``spillway worker``
starts one; ``spillway serve`` schedules ``ProcessEngine.cleanup_history`` the same way), so a
long cleanup never occupies a job executor thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from engine.bpmn.namespaces import BPMN_NS, CAMUNDA_NS
from engine.core.bounded import BoundedCache
from engine.core.clock import Clock
from engine.core.errors import EngineError
from engine.core.timers import parse_duration
from engine.deploy import bpmnxml
from engine.storage.operations import CLEANUP_BATCH
from engine.storage.store import Store

log = logging.getLogger("spillway.cleanup")

#: How often ``HistoryCleaner`` runs the cleanup by default (seconds).
DEFAULT_CLEANUP_INTERVAL = 3600.0
#: Pause between two batches (seconds): writers waiting for the database go first.
BATCH_PAUSE = 0.005
TTL_CACHE_SIZE = 1000  # definitions whose time to live is kept; a miss re-reads the source


def parse_ttl(text: str, where: str) -> timedelta:
    """``camunda:historyTimeToLive``: whole days or an ISO 8601 duration."""
    value = text.strip()
    if value.isdigit():
        return timedelta(days=int(value))
    try:
        duration = parse_duration(value)
    except EngineError as exc:
        raise EngineError(
            f"{where}: camunda:historyTimeToLive {text!r} is neither a number of days nor "
            f"an ISO 8601 duration ({exc})"
        ) from None
    return timedelta(seconds=duration.total_seconds_approx())


def process_ttl(resources: list[dict[str, Any]], key: str) -> timedelta | None:
    """The ``camunda:historyTimeToLive`` of process ``key`` in a deployment's sources."""
    for resource in resources:
        source = bpmnxml.Source(resource["name"], resource["content"])
        if source.is_dmn:
            continue
        try:
            root = bpmnxml.parse_xml(source)
        except EngineError:
            continue
        for process in root.iter(f"{{{BPMN_NS}}}process"):
            if process.get("id") == key:
                text = process.get(f"{{{CAMUNDA_NS}}}historyTimeToLive")
                if text is None or not text.strip():
                    return None
                return parse_ttl(text, f"{resource['name']}: process '{key}'")
    return None


def to_timedelta(value: float | timedelta | None, what: str) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        ttl = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ttl = timedelta(seconds=float(value))
    else:
        raise EngineError(f"{what} must be seconds or a timedelta, got {value!r}")
    if ttl < timedelta(0):
        raise EngineError(f"{what} must not be negative, got {value!r}")
    return ttl


class HistoryCleanup:
    """Removes ended instances past their time to live (see the module docstring)."""

    def __init__(self, store: Store, default_ttl: timedelta | None, batch: int = CLEANUP_BATCH):
        self.store = store
        self.default_ttl = default_ttl
        self.batch = batch
        # definition id -> its process's ttl
        self._ttls: BoundedCache[str, timedelta | None] = BoundedCache(
            TTL_CACHE_SIZE, "history time to live"
        )

    def caches(self) -> list[BoundedCache[Any, Any]]:
        return [self._ttls]

    def ttl(self, definition: dict[str, Any]) -> timedelta | None:
        definition_id = str(definition["id"])
        if definition_id not in self._ttls:
            resources = self.store.resources(definition["deployment_id"])
            own = process_ttl(resources, str(definition["key"]))
            self._ttls[definition_id] = own
        own = self._ttls[definition_id]
        return own if own is not None else self.default_ttl

    def run(self, now: datetime, stop: Callable[[], bool] | None = None) -> int:
        """Delete what is due at ``now``; how many instances went."""
        by_ttl: dict[timedelta, list[str]] = {}
        for definition in self.store.all_definitions():
            ttl = self.ttl(definition)
            if ttl is not None:
                by_ttl.setdefault(ttl, []).append(str(definition["id"]))
        removed = 0
        for ttl, definition_ids in sorted(by_ttl.items()):
            cutoff = now - ttl
            for start in range(0, len(definition_ids), 500):
                group = definition_ids[start : start + 500]
                while stop is None or not stop():
                    ids = self.store.ended_instance_ids(group, cutoff, self.batch)
                    if not ids:
                        break
                    count, _rows = self.store.delete_ended_instances(ids)
                    removed += count
                    time.sleep(BATCH_PAUSE)
        if removed:
            log.info("history cleanup: %d ended instances removed", removed)
        return removed


class HistoryCleaner:
    """Runs ``cleanup()`` every ``interval`` seconds on a daemon thread until ``stop()``."""

    def __init__(
        self, cleanup: Callable[[], int], interval: float = DEFAULT_CLEANUP_INTERVAL
    ) -> None:
        if interval <= 0:
            raise EngineError(f"cleanup interval must be positive, got {interval}")
        self.cleanup = cleanup
        self.interval = float(interval)
        self.removed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def of(
        cls, cleanup: HistoryCleanup, clock: Clock, interval: float = DEFAULT_CLEANUP_INTERVAL
    ) -> HistoryCleaner:
        """A cleaner running ``cleanup`` at ``clock``'s time, stopping between batches."""
        cleaner: HistoryCleaner

        def run() -> int:
            return cleanup.run(clock.now(), stop=cleaner.stopping)

        cleaner = cls(run, interval)
        return cleaner

    def stopping(self) -> bool:
        """True once ``stop()`` was called: a running cleanup ends after its batch."""
        return self._stop.is_set()

    def run_once(self) -> int:
        try:
            count = self.cleanup()
        except EngineError as exc:
            log.warning("history cleanup failed: %s; next try in %.0fs", exc, self.interval)
            return 0
        self.removed += count
        return count

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="spillway-cleanup", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


__all__ = ["HistoryCleaner", "HistoryCleanup"]
