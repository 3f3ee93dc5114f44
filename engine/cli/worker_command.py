"""``spillway worker``: the job executor (and worker pools) as a process."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any

from engine.engine import ProcessEngine
from engine.work.pool import load_pools


def cmd_worker(eng: ProcessEngine, args: argparse.Namespace) -> None:
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()  # only a flag: the main loop shuts down

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    pools = load_pools(eng, args.pools) if args.pools else []
    executor = eng.job_executor(
        workers=args.workers, max_idle_wait=args.max_idle_wait, lock_duration=args.lock_duration
    )
    executor.start()
    for pool in pools:
        pool.start()
        print(f"worker pool {pool.worker_id}: topic '{pool.topic}'", flush=True)
    print(f"worker {executor.owner}: {args.workers} threads; Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(0.5):
            if (
                args.exit_when_idle
                and not eng.store.next_due_job()
                and executor.free_workers() == args.workers
                and not any(p.busy() or p.pending() for p in pools)
            ):
                break
    finally:
        for pool in pools:
            pool.stop(timeout=args.stop_timeout)
        executor.stop(timeout=args.stop_timeout)
    print(f"worker {executor.owner}: stopped after {executor.executed} jobs", flush=True)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="run the job executor until stopped")
    p.add_argument("--workers", type=int, default=int(os.environ.get("SPILLWAY_WORKERS", "4")))
    p.add_argument("--max-idle-wait", type=float, default=1.0)
    p.add_argument("--stop-timeout", type=float, default=30.0)
    p.add_argument(
        "--lock-duration",
        type=float,
        default=300.0,
        help="seconds a job stays locked; a crashed worker's jobs run again after it",
    )
    p.add_argument("--exit-when-idle", action="store_true", help="stop once no job is left")
    p.add_argument(
        "--pools",
        default=os.environ.get("SPILLWAY_POOLS"),
        metavar="FILE",
        help="TOML file of worker pools to run too, [pools.<topic>] tables (env SPILLWAY_POOLS)",
    )
    p.set_defaults(fn=cmd_worker)
