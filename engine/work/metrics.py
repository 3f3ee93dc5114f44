"""``EngineMetrics``: an engine's Prometheus metrics, in a registry of its own.

``ProcessEngine.metrics`` is one of these (unless the engine was made with ``metrics=False``):
an ``engine.core.observe.Observer`` the runtime calls as work happens, counting into
``metrics.registry``, a ``prometheus_client.CollectorRegistry`` that belongs to that engine
alone, so several engines in one process (tests, a multi-tenant service) never share or clash
over a metric. ``metrics.exposition()`` is the text ``/metrics`` serves
(``engine.http.metrics``; ``spillway worker --metrics-port``).

Counters count what this process did since it started; gauges read at scrape time what the
database holds (open incidents, the due-job backlog), so every node reports the same value for
those. Every metric is listed, with its labels and meaning, in docs/operations.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.core.observe import Observer, QueueDepth
from engine.core.stats import Counters
from engine.core.values import ENDED_STATES
from engine.storage import gauges
from engine.storage.store import Store

log = logging.getLogger("spillway.metrics")

PREFIX = "spillway"
#: Pickup latency buckets, seconds: from an idle executor woken at once to a backlog of minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: HTTP request duration buckets, seconds (long polls wait up to their asyncResponseTimeout).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Incident kinds always reported (0 when none is open), so an alert on them has a series.
INCIDENT_KINDS = ("failed-job", "failed-external-task")
#: The exposition's content type (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _handler(job: Mapping[str, Any]) -> str:
    return str(job.get("handler") or "")


class _Children:
    """A labelled metric's children by label values, cached: ``metric.labels(...)`` validates
    and locks on every call (a few microseconds), a dict lookup does not."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._cache.get(values)
        if child is None:
            child = self._cache.setdefault(values, self._metric.labels(*values))
        return child


class EngineMetrics(Observer):
    """The Prometheus metrics of one engine (``ProcessEngine.metrics``)."""

    def __init__(self, store: Store, now: Callable[[], datetime], stats: Counters) -> None:
        self.registry = CollectorRegistry()
        self._store = store
        self._now = now
        self._stats = stats
        self._executors: list[QueueDepth] = []
        self._lock = threading.Lock()
        r = self.registry
        self.instances_started = Counter(
            f"{PREFIX}_process_instances_started",
            "Process instances started, by process key.",
            ["process_key"],
            registry=r,
        )
        self.instances_completed = Counter(
            f"{PREFIX}_process_instances_completed",
            "Process instances that reached an end (state completed), by process key.",
            ["process_key"],
            registry=r,
        )
        self.instances_terminated = Counter(
            f"{PREFIX}_process_instances_terminated",
            "Process instances terminated by an operator (cancelled, or a modification that "
            "cancelled every token), by process key.",
            ["process_key"],
            registry=r,
        )
        job_labels = ["kind", "handler"]
        self.jobs_acquired_count = Counter(
            f"{PREFIX}_jobs_acquired",
            "Jobs locked for execution by this process, by kind and handler.",
            job_labels,
            registry=r,
        )
        self.jobs_executed = Counter(
            f"{PREFIX}_jobs_executed",
            "Jobs whose run committed, by kind and handler.",
            job_labels,
            registry=r,
        )
        self.jobs_failed = Counter(
            f"{PREFIX}_jobs_failed",
            "Failed job attempts counted (a retry scheduled, or an incident opened when none "
            "are left), by kind and handler.",
            job_labels,
            registry=r,
        )
        self.jobs_released = Counter(
            f"{PREFIX}_jobs_released",
            "Jobs given back uncounted: their instance changed meanwhile, or the lock was lost.",
            job_labels,
            registry=r,
        )
        self.pickup_latency = Histogram(
            f"{PREFIX}_job_pickup_latency_seconds",
            "Seconds from a job falling due (or being committed, if later) to a worker thread "
            "starting it, on the engine clock, by kind.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.external_fetched_count = Counter(
            f"{PREFIX}_external_tasks_fetched",
            "External tasks fetched and locked by workers, by topic.",
            ["topic"],
            registry=r,
        )
        self.external_completed_count = Counter(
            f"{PREFIX}_external_tasks_completed",
            "External task completions applied, by topic.",
            ["topic"],
            registry=r,
        )
        self.external_duplicates = Counter(
            f"{PREFIX}_external_tasks_duplicates",
            "Completions ignored because the task had already completed or was cancelled.",
            registry=r,
        )
        self.external_lock_lost_count = Counter(
            f"{PREFIX}_external_tasks_lock_lost",
            "Reports refused because the reporting worker no longer held the task's lock "
            "(it expired and another worker fetched the task, or it was unlocked).",
            registry=r,
        )
        self.http_duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP requests served, by method, route template and status code.",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        r.register(_ScrapeTime(self))
        self._started = _Children(self.instances_started)
        self._ended = {
            "completed": _Children(self.instances_completed),
            "terminated": _Children(self.instances_terminated),
        }
        self._acquired = _Children(self.jobs_acquired_count)
        self._finished = {
            "executed": _Children(self.jobs_executed),
            "failed": _Children(self.jobs_failed),
            "released": _Children(self.jobs_released),
        }
        self._latency = _Children(self.pickup_latency)
        self._fetched = _Children(self.external_fetched_count)
        self._completed = _Children(self.external_completed_count)
        #: HTTP request durations by (method, route, status) (engine.http.metrics).
        self.http_durations = _Children(self.http_duration)

    # -- the observer ---------------------------------------------------------------------

    def instance_committed(self, process_key: str, created: bool, state: str) -> None:
        if created:
            self._started(process_key).inc()
        if state in ENDED_STATES:
            self._ended[state](process_key).inc()

    def jobs_acquired(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        for job in jobs:
            self._acquired(job["kind"], _handler(job)).inc()

    def job_started(self, job: Mapping[str, Any], latency: float) -> None:
        self._latency(job["kind"]).observe(latency)

    def job_finished(self, job: Mapping[str, Any], outcome: str) -> None:
        counter = self._finished.get(outcome)
        if counter is not None:
            counter(job["kind"], _handler(job)).inc()

    def external_fetched(self, topic: str, count: int) -> None:
        self._fetched(topic).inc(count)

    def external_completed(self, topic: str, count: int) -> None:
        self._completed(topic).inc(count)

    def external_duplicate(self) -> None:
        self.external_duplicates.inc()

    def external_lock_lost(self) -> None:
        self.external_lock_lost_count.inc()

    def executor_started(self, executor: QueueDepth) -> None:
        with self._lock:
            self._executors.append(executor)

    def executor_stopped(self, executor: QueueDepth) -> None:
        with self._lock:
            if executor in self._executors:
                self._executors.remove(executor)

    # -- reading ----------------------------------------------------------------------------

    def queue_depth(self) -> int:
        """Jobs locked by this process's executors and waiting for a worker thread."""
        with self._lock:
            executors = list(self._executors)
        return sum(e.queued() for e in executors)

    def exposition(self) -> bytes:
        """Every metric of this engine in Prometheus' text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The current value of one sample (``spillway_jobs_failed_total``,
        ``{"kind": ..., "handler": ...}``), None when it has none yet."""
        return self.registry.get_sample_value(name, dict(labels or {}))


_Families = tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]


class _ScrapeTime(Collector):
    """Gauges read when scraped: the database's counts, the executors' queues, the engine's
    conflict counter."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self._m = metrics

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        m = self._m
        incidents, due, queue, conflicts = self._families()
        try:
            counts = dict.fromkeys(INCIDENT_KINDS, 0) | gauges.open_incidents(m._store)
            for kind, n in sorted(counts.items()):
                incidents.add_metric([kind], n)
            due.add_metric([], gauges.due_jobs(m._store, m._now()))
        except Exception:  # a scrape without the database's gauges rather than a 500
            log.warning("metrics: the database gauges could not be read", exc_info=True)
        else:
            yield incidents
            yield due
        queue.add_metric([], m.queue_depth())
        conflicts.add_metric([], m._stats["conflicts_retried"])
        yield queue
        yield conflicts

    @staticmethod
    def _families() -> _Families:
        return (
            GaugeMetricFamily(
                f"{PREFIX}_incidents_open",
                "Open incidents in the database, by kind (failed-job, failed-external-task).",
                labels=["kind"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_jobs_due",
                "Jobs due now that no live lock holds, with retries left (the backlog).",
            ),
            GaugeMetricFamily(
                f"{PREFIX}_job_executor_queue_depth",
                "Jobs locked by this process's executors, waiting for a worker thread.",
            ),
            CounterMetricFamily(
                f"{PREFIX}_conflicts_retried",
                "Commands re-run inside the engine after losing an optimistic-locking race.",
            ),
        )


__all__ = ["CONTENT_TYPE", "EngineMetrics"]
