"""The background job executor: acquire -> execute -> record outcome -> wait.

One acquisition thread locks due jobs in batches (one job per instance) and hands each free
worker thread a group of up to ``group_size`` of them. A thread runs its group's jobs one after
another in memory and commits their writes together in one transaction, each write isolated
(group commit, ``JobRunner.execute_batch``, ``Store.apply_group``): a job whose write conflicts
or fails is settled alone, the others commit once. A thread that committed its group acquires
its next group itself, in due order as the acquisition thread would, until none is due: no
batch waits locked behind the running ones, and no hand-off between threads (the acquisition
thread running beside the workers cost a GIL and SQLite write-lock hand-off per batch, about a
third of a job's time on SQLite). The acquisition thread only fills threads that are free.
Waiting wakes at once when this process commits a job (an engine listener), when another node
does (PostgreSQL ``LISTEN``; a SQLite file's ``data_version``, ``engine.storage.notify``), when
the next known job falls due, or after an idle wait that doubles up to a cap and resets on
work. ``stop()`` is idempotent: it stops acquiring, gives back the jobs it had not started yet,
and lets running jobs finish (up to ``timeout``).
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
#: Jobs a worker thread runs and then commits in one transaction (group commit).
DEFAULT_GROUP_SIZE = 16


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
        group_size: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if group_size is None:
            group_size = DEFAULT_GROUP_SIZE
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.engine = engine
        self.workers = workers
        #: Jobs of different instances a thread runs before committing them together.
        self.group_size = group_size
        self.owner = owner or new_owner()
        self.runner = JobRunner(engine, lock_duration)
        self.min_idle_wait = min_idle_wait
        self.max_idle_wait = max_idle_wait
        self.listen = listen
        self.executed = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._in_flight: set[Future[list[bool]]] = set()
        self._queued: dict[Future[list[bool]], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._waiting = 0  # jobs submitted to a worker thread and not started yet
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
        queued = [(f, rows) for f, rows in waiting if f.cancel()]
        with self._lock:
            self._waiting -= sum(len(rows) for _f, rows in queued)
        for _future, rows in queued:  # never started: another node may take them at once
            for row in rows:
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
        # Busy threads acquire their next group themselves; the acquisition thread is only
        # needed for a free one (waking it after every group's commit cost a thread switch).
        if self.free_workers() > 0:
            self._wake.set()

    def queued(self) -> int:
        """Jobs locked and not started yet (the queue depth): queued for a free worker thread,
        or waiting their turn in the group a thread runs."""
        with self._lock:
            return self._waiting

    def free_workers(self) -> int:
        """Worker threads not running a job now."""
        with self._lock:
            self._in_flight = {f for f in self._in_flight if not f.done()}
            return self.workers - len(self._in_flight)

    def run_once(self) -> bool:
        """Acquire and submit one batch; True if it found work."""
        # Each free thread gets a group of jobs to run and commit together (an acquisition
        # costs about as much as a job: one job per thread would halve throughput). Busy
        # threads acquire their next group themselves (_execute).
        free = self.free_workers()
        if free <= 0:
            return True  # every thread is busy and feeds itself
        rows = self.runner.acquire(self.owner, free * self.group_size)
        assert self._pool is not None
        for group in self._groups(rows, free):
            future = self._pool.submit(self._execute, group)
            with self._lock:
                self._in_flight.add(future)
                self._queued[future] = group
                self._waiting += len(group)
            future.add_done_callback(self._done)
        return bool(rows)

    def _groups(self, rows: list[dict[str, Any]], free: int) -> list[list[dict[str, Any]]]:
        """The acquired jobs cut into groups of at most ``group_size``, spread over the free
        threads first (a thread commits its group in one transaction)."""
        if not rows:
            return []
        size = min(self.group_size, -(-len(rows) // max(1, free)))
        return [rows[i : i + size] for i in range(0, len(rows), size)]

    def _done(self, future: Future[list[bool]]) -> None:
        with self._lock:
            self._queued.pop(future, None)
            outstanding = len(self._queued)
        # Wake the acquisition only when the groups still waiting or running no longer
        # exceed the threads: waking it after every job cost a thread switch for nothing.
        if outstanding <= self.workers:
            self._wake.set()

    def _execute(self, group: list[dict[str, Any]]) -> list[bool]:
        if self._stopping.is_set():  # started after stop(): give the whole group back
            with self._lock:
                self._waiting -= len(group)
            for row in group:
                with contextlib.suppress(Exception):
                    self.engine.store.release_job(row["id"], self.owner)
            return [False] * len(group)
        done: list[bool] = []
        while True:
            try:
                if len(group) == 1:
                    self._started_one()
                    done.append(self.runner.execute(group[0], self.owner))
                else:
                    done += self.runner.execute_batch(
                        group, self.owner, self._stopping.is_set, self._started_one
                    )
            finally:
                with self._lock:
                    self.executed += len(group)
            group = self._acquire_next()
            if not group:
                return done

    def _acquire_next(self) -> list[dict[str, Any]]:
        """The next group for the calling thread, which just committed its own: acquired here
        rather than by the acquisition thread, so no job waits locked behind a running group
        and no thread hand-off sits between groups. Empty when stopping or none is due."""
        if self._stopping.is_set():
            return []
        try:
            group = self.runner.acquire(self.owner, self.group_size)
        except Exception:
            # The acquisition thread retries after its idle wait, as for its own failures.
            log.exception("job executor %s: acquisition failed", self.owner)
            return []
        with self._lock:
            self._waiting += len(group)
        return group

    def _started_one(self) -> None:
        with self._lock:
            self._waiting -= 1

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
