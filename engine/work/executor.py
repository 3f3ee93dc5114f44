"""The background job executor: acquire -> execute -> record outcome -> wait.

One acquisition thread locks due jobs in batches no larger than the free worker threads, so no
locked job waits in a queue. Waiting wakes at once when this process commits a job (an engine
listener), when another node does (PostgreSQL ``LISTEN``; a SQLite file's ``data_version``,
``engine.storage.notify``), when the next known job falls due,
or after an idle wait that doubles up to a cap and resets on work. At most one batch waits
behind the running jobs. ``stop()`` is idempotent: it stops acquiring, gives back the jobs it
had not started yet, and lets running jobs finish (up to ``timeout``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from engine.core.durations import DEFAULT_LOCK_DURATION
from engine.storage.notify import NotifyListener
from engine.work.host import JobHost
from engine.work.job_runner import JobRunner, new_owner

log = logging.getLogger("spillway.executor")

DEFAULT_MIN_IDLE_WAIT = 0.05  # seconds
DEFAULT_MAX_IDLE_WAIT = 5.0  # seconds; Camunda's default acquisition wait
MIN_QUEUE = 8


class JobExecutor:
    def __init__(
        self,
        engine: JobHost,
        workers: int = 4,
        *,
        lock_duration: float = DEFAULT_LOCK_DURATION,
        min_idle_wait: float = DEFAULT_MIN_IDLE_WAIT,
        max_idle_wait: float = DEFAULT_MAX_IDLE_WAIT,
        owner: str | None = None,
        listen: bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.engine = engine
        self.workers = workers
        #: Jobs locked and waiting behind the running ones; at least a batch of 8, which
        #: amortises the acquisition statements even with one thread.
        self.queue_size = max(workers, MIN_QUEUE)
        self.owner = owner or new_owner()
        self.runner = JobRunner(engine, lock_duration)
        self.min_idle_wait = min_idle_wait
        self.max_idle_wait = max_idle_wait
        self.listen = listen
        self.executed = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._in_flight: set[Future[bool]] = set()
        self._queued: dict[Future[bool], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._listener: NotifyListener | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> JobExecutor:
        if self._thread is not None:
            return self
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="spillway-job")
        self.engine.commands.add_listener(self._on_commit)
        self._thread = threading.Thread(target=self._loop, name="spillway-acquire", daemon=True)
        self._thread.start()
        self.engine.observer.executor_started(self)  # its queue counts in the queue depth
        if self.listen:
            self._listener = NotifyListener(self.engine.store, self._wake.set, self.owner).start()
        log.info("job executor %s started with %d workers", self.owner, self.workers)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop acquiring and wait for running jobs (up to ``timeout`` seconds)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        self.engine.commands.remove_listener(self._on_commit)
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            waiting = list(self._queued.items())
        # cancel() runs the done callback, which takes the lock: call it outside.
        queued = [(f, row) for f, row in waiting if f.cancel()]
        for _future, row in queued:  # never started: another node may take them at once
            with contextlib.suppress(Exception):
                self.engine.store.release_job(row["id"], self.owner)
        if self._pool is not None:
            self._pool.shutdown(wait=timeout is None)
            if timeout is not None:
                deadline = time.monotonic() + timeout
                for future in list(self._in_flight):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    with contextlib.suppress(Exception):  # logged by the job runner
                        future.result(remaining)
        if self._listener is not None:
            self._listener.stop()
        self.engine.observer.executor_stopped(self)
        log.info("job executor %s stopped after %d jobs", self.owner, self.executed)

    def __enter__(self) -> JobExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop -----------------------------------------------------------------------

    def _on_commit(self, _instance_id: str) -> None:
        self._wake.set()

    def queued(self) -> int:
        """Jobs locked and waiting for a free worker thread (the queue depth)."""
        with self._lock:
            return sum(1 for future in self._queued if not future.running())

    def free_workers(self) -> int:
        """Worker threads not running a job now."""
        with self._lock:
            self._in_flight = {f for f in self._in_flight if not f.done()}
            return self.workers - len(self._in_flight)

    def run_once(self) -> bool:
        """Acquire and submit one batch; True if it found work."""
        # Up to one batch queued behind the running jobs: an acquisition costs about as much
        # as a job, so acquiring one job per free thread would halve throughput. The queued
        # jobs' locks last far longer than the queue does.
        room = self.free_workers() + self.queue_size
        if room < self.queue_size:
            return True  # a batch still waits; refill when no more than the threads' worth do
        rows = self.runner.acquire(self.owner, room)
        assert self._pool is not None
        for row in rows:
            future = self._pool.submit(self._execute, row)
            with self._lock:
                self._in_flight.add(future)
                self._queued[future] = row
            future.add_done_callback(self._done)
        return bool(rows)

    def _done(self, future: Future[bool]) -> None:
        with self._lock:
            self._queued.pop(future, None)
            outstanding = len(self._queued)
        # Wake the acquisition only when the jobs still waiting or running no longer exceed
        # the threads: waking it after every job cost a thread switch per job for nothing.
        if outstanding <= self.workers:
            self._wake.set()

    def _execute(self, row: dict[str, Any]) -> bool:
        try:
            return self.runner.execute(row, self.owner)
        finally:
            with self._lock:
                self.executed += 1

    def _loop(self) -> None:
        idle_wait = self.min_idle_wait
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                found = self.run_once()
            except Exception:
                log.exception("job executor %s: acquisition failed", self.owner)
                found = False
            if found:
                idle_wait = self.min_idle_wait
                if self.free_workers() > 0:
                    continue
                self._wake.wait(self.max_idle_wait)
                continue
            self._wake.wait(self._until_next_due(idle_wait))
            idle_wait = min(idle_wait * 2, self.max_idle_wait)

    def _until_next_due(self, idle_wait: float) -> float:
        try:
            next_due = self.engine.store.next_due_job(self.engine.registered_handlers())
        except Exception:  # noqa: BLE001 - a failed peek only shortens the wait
            return idle_wait
        if next_due is None:
            return idle_wait
        seconds = (next_due - self.engine.now()).total_seconds()
        # Due now yet not acquired (its instance is busy with another job): do not spin.
        return float(max(self.min_idle_wait, min(idle_wait, seconds)))
