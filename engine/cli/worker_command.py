"""``spillway worker``: the job executor (and worker pools) as a process.

A worker acquires only jobs it can run: those whose handler is registered in it (``--app``) and
those that need none (timers, signals, async-after continuations). A worker without any handler
and without pools refuses to start: it could only take jobs meant for other workers.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from engine.cli.args import (
    UsageError,
    non_negative_float,
    port_number,
    positive_float,
    positive_int,
)
from engine.cli.output import progress
from engine.engine import ProcessEngine
from engine.work.executor import DEFAULT_GROUP_SIZE
from engine.work.pool import WorkerPool, load_pools


def _pool_line(pool: WorkerPool) -> str:
    s = pool.stats.snapshot()
    parts = [f"{s.get('completed', 0)} tasks completed"]
    for key, label in (("failed", "failed"), ("bpmn_errors", "BPMN errors")):
        if s.get(key):
            parts.append(f"{s[key]} {label}")
    return f"worker pool {pool.worker_id} (topic '{pool.topic}'): {', '.join(parts)}"


def _done(executor_executed: int, pools: list[WorkerPool]) -> int:
    return executor_executed + sum(p.stats["completed"] + p.stats["failed"] for p in pools)


def _serve_metrics(eng: ProcessEngine, args: argparse.Namespace) -> WSGIServer:
    """``/metrics`` on ``--metrics-host``:``--metrics-port`` (prometheus_client's own small
    server, on a thread; no credentials: it tells counts, process keys, topics and handler
    names, nothing of any instance's data)."""
    if eng.metrics is None:
        raise UsageError("worker: --metrics-port, but the --app engine was made with metrics=False")
    try:
        server, _thread = start_http_server(
            args.metrics_port, args.metrics_host, registry=eng.metrics.registry
        )
    except OSError as exc:
        raise UsageError(
            f"worker: cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
            f"{exc.strerror or exc}"
        ) from exc
    host, port = server.server_address[:2]
    print(f"worker metrics: http://{_url_host(str(host))}:{port}/metrics", flush=True)
    return server


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def cmd_worker(eng: ProcessEngine, args: argparse.Namespace) -> None:
    if not eng.registered_handlers() and not args.pools:
        raise UsageError(
            "worker: no handler is registered (no --app given?); a worker only acquires jobs "
            "whose handler it has, so this one would sit idle; pass --app module:attribute"
        )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()  # only a flag: the main loop shuts down

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    pools = load_pools(eng, args.pools) if args.pools else []
    # First: a port that cannot be had is a usage error before anything runs.
    metrics_server = _serve_metrics(eng, args) if args.metrics_port is not None else None
    executor = eng.job_executor(
        workers=args.workers,
        max_idle_wait=args.max_idle_wait,
        lock_duration=args.lock_duration,
        group_size=args.group_size,
    )
    executor.start()
    cleaner = eng.history_cleaner(args.cleanup_interval) if args.cleanup_interval > 0 else None
    if cleaner is not None:
        cleaner.start()  # history cleanup (engine.work.history_cleanup), on a thread of its own
    for pool in pools:
        pool.start()
        print(f"worker pool {pool.worker_id}: topic '{pool.topic}'", flush=True)
    print(f"worker {executor.owner}: {args.workers} threads; Ctrl-C to stop", flush=True)
    handlers = eng.registered_handlers()
    try:
        with progress("jobs and external tasks done") as bar:
            seen = 0
            while not stop.wait(0.5):
                done = _done(executor.executed, pools)
                bar.advance(done - seen)
                seen = done
                if (
                    args.exit_when_idle
                    and not eng.store.next_due_job(handlers)
                    and executor.free_workers() == args.workers
                    and not any(p.busy() or p.pending() for p in pools)
                ):
                    break
    finally:
        for pool in pools:
            pool.stop(timeout=args.stop_timeout)
        executor.stop(timeout=args.stop_timeout)
        if cleaner is not None:
            cleaner.stop(timeout=args.stop_timeout)
        if metrics_server is not None:
            metrics_server.shutdown()  # the last scrape sees the stopped executor
            metrics_server.server_close()
    for pool in pools:
        print(_pool_line(pool), flush=True)
    print(f"worker {executor.owner}: stopped after {executor.executed} jobs", flush=True)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="run the job executor (and worker pools) until stopped",
        description="Run due jobs (retries, async continuations, timers). The worker acquires "
        "only jobs whose handler --app registers, or that need none; without any handler it "
        "refuses to start.",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=os.environ.get("SPILLWAY_WORKERS", "4"),
        help="job threads, >= 1 (env SPILLWAY_WORKERS; default 4)",
    )
    p.add_argument(
        "--group-size",
        type=positive_int,
        default=os.environ.get("SPILLWAY_GROUP_SIZE"),
        help="jobs a thread runs and then commits in one transaction, >= 1; 1 commits each "
        f"job on its own (env SPILLWAY_GROUP_SIZE; default {DEFAULT_GROUP_SIZE})",
    )
    p.add_argument("--max-idle-wait", type=positive_float, default=1.0)
    p.add_argument("--stop-timeout", type=non_negative_float, default=30.0)
    p.add_argument(
        "--lock-duration",
        type=positive_float,
        default=300.0,
        help="seconds (> 0) a job stays locked; a crashed worker's jobs run again after it",
    )
    p.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="stop once no job this worker can run is due and the pools' topics are drained",
    )
    p.add_argument(
        "--pools",
        default=os.environ.get("SPILLWAY_POOLS"),
        metavar="FILE",
        help="TOML file of worker pools to run too, [pools.<topic>] tables (env SPILLWAY_POOLS)",
    )
    p.add_argument(
        "--cleanup-interval",
        type=non_negative_float,
        default=os.environ.get("SPILLWAY_CLEANUP_INTERVAL", "3600"),
        help="seconds between history cleanups (env SPILLWAY_CLEANUP_INTERVAL; 0: none)",
    )
    p.add_argument(
        "--metrics-port",
        type=port_number,
        default=os.environ.get("SPILLWAY_METRICS_PORT"),
        metavar="N",
        help="serve Prometheus metrics at http://HOST:N/metrics (env SPILLWAY_METRICS_PORT; "
        "0 picks a free port, printed at start; default: none)",
    )
    p.add_argument(
        "--metrics-host",
        default=os.environ.get("SPILLWAY_METRICS_HOST", "127.0.0.1"),
        metavar="H",
        help="address the metrics server binds (env SPILLWAY_METRICS_HOST; default 127.0.0.1)",
    )
    p.set_defaults(fn=cmd_worker)
