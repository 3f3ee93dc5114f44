"""``start()`` called together by several threads (and processes), beside one thread, in the
same run; the engine's conflict counters read after each.

    python benchmarks/bench_concurrency.py [--starts 2000] [--rounds 3] [--pg URL]

Configurations, each starting ``--starts`` instances in all of a one-service-task process
(handler called, instance and history committed):

- 1 thread (the baseline), 4 threads of one engine, on a SQLite file;
- with ``--pg``, on PostgreSQL: 1 thread, 4 threads, 3 processes (one engine each, one thread),
  3 processes x 4 threads.

The configurations of one database run in turn, ``--rounds`` times, so that the load of a
shared machine falls on each alike. Throughput is starts per second of wall time from the
moment all callers are released together (a barrier) to the last commit; latency is per
``start()`` call. Conflicts are the engine's own counts (``ProcessEngine.stats``):
``conflicts_retried`` (commands re-run after losing an optimistic-locking race) and
``conflicts_failed`` (``ConcurrencyConflict`` reached the caller), plus any other error.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from engine import ProcessEngine
from tests.bpmnbuild import process, service

BPMN = process("conc", service("Work", "work"))
WARMUP = 50


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    retried: int = 0
    failed: int = 0
    errors: int = 0


def new_engine(url: str) -> ProcessEngine:
    eng = ProcessEngine(url)
    eng.register_handler("work", lambda ctx: {"done": True})
    eng.deploy(BPMN)
    return eng


def run_threads(eng: ProcessEngine, threads: int, starts: int, barrier: Any) -> dict[str, Any]:
    """``threads`` threads of ``eng`` start ``starts`` instances in all, released together."""
    per_thread = [starts // threads + (1 if i < starts % threads else 0) for i in range(threads)]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    local = threading.Barrier(threads + 1)
    before = eng.stats.snapshot()

    def work(i: int) -> None:
        local.wait()
        out = latencies[i]
        for _ in range(per_thread[i]):
            t0 = time.perf_counter()
            try:
                eng.start("conc")
            except Exception:
                errors[i] += 1
            out.append(time.perf_counter() - t0)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for th in pool:
        th.start()
    barrier.wait()  # every process (or just this one) ready: go
    t0 = time.perf_counter()
    local.wait()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t0
    after = eng.stats.snapshot()
    return {
        "latencies": [x for lat in latencies for x in lat],
        "wall": wall,
        "retried": after.get("conflicts_retried", 0) - before.get("conflicts_retried", 0),
        "failed": after.get("conflicts_failed", 0) - before.get("conflicts_failed", 0),
        "errors": sum(errors),
    }


def _process_main(url: str, threads: int, starts: int, barrier: Any, queue: Any) -> None:
    eng = new_engine(url)
    for _ in range(WARMUP):
        eng.start("conc")
    queue.put(run_threads(eng, threads, starts, barrier))
    eng.close()


def run_processes(url: str, processes: int, threads: int, starts: int) -> Outcome:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    queue = ctx.Queue()
    share = [starts // processes + (1 if i < starts % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(target=_process_main, args=(url, threads, n, barrier, queue)) for n in share
    ]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    results = [queue.get(timeout=1800) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    out = Outcome(wall=wall)
    for r in results:
        out.latencies += r["latencies"]
        out.retried += r["retried"]
        out.failed += r["failed"]
        out.errors += r["errors"]
    return out


def run_in_process(eng: ProcessEngine, threads: int, starts: int) -> Outcome:
    r = run_threads(eng, threads, starts, threading.Barrier(1))
    return Outcome(r["latencies"], r["wall"], r["retried"], r["failed"], r["errors"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(db: str, results: dict[str, list[Outcome]]) -> None:
    print(f"\n{db}:")
    print(
        f"  {'callers':22} {'starts/s':>9} {'vs 1 thread':>11} {'p50':>8} {'p99':>8} "
        f"{'p99/p50':>7} {'retried':>7} {'failed':>6} {'errors':>6}"
    )
    base = None
    for name, outcomes in results.items():
        lat = [x for o in outcomes for x in o.latencies]
        rate = sum(len(o.latencies) for o in outcomes) / sum(o.wall for o in outcomes)
        base = base or rate
        p50, p99 = statistics.median(lat), pct(lat, 0.99)
        print(
            f"  {name:22} {rate:9.0f} {rate / base:11.2f} {p50 * 1e3:6.2f}ms {p99 * 1e3:6.2f}ms "
            f"{p99 / p50:7.1f} {sum(o.retried for o in outcomes):7} "
            f"{sum(o.failed for o in outcomes):6} {sum(o.errors for o in outcomes):6}"
        )


def reset_pg(url: str) -> None:
    base = sa.make_url(url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{base.database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{base.database}"')
    admin.dispose()


def bench(url: str, starts: int, rounds: int, with_processes: bool) -> dict[str, list[Outcome]]:
    eng = new_engine(url)
    for _ in range(WARMUP):
        eng.start("conc")
    configs: list[tuple[str, int, int]] = [("1 thread", 1, 1), ("4 threads", 1, 4)]
    if with_processes:
        configs += [("3 processes", 3, 1), ("3 processes x 4 threads", 3, 4)]
    results: dict[str, list[Outcome]] = {name: [] for name, _, _ in configs}
    for _ in range(rounds):
        for name, procs, threads in configs:
            if procs == 1:
                results[name].append(run_in_process(eng, threads, starts))
            else:
                results[name].append(run_processes(url, procs, threads, starts))
    eng.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--starts", type=int, default=2000, help="instances per configuration")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", help="PostgreSQL URL (the database is dropped and recreated)")
    ap.add_argument("--sqlite-processes", action="store_true", help="also 3 processes on SQLite")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, {platform.machine()}")
    folder = tempfile.mkdtemp(prefix="spillway-conc-")
    url = f"sqlite:///{folder}/conc.db"
    report("SQLite file", bench(url, args.starts, args.rounds, args.sqlite_processes))
    if args.pg:
        reset_pg(args.pg)
        report("PostgreSQL", bench(args.pg, args.starts, args.rounds, True))


if __name__ == "__main__":
    main()
