"""Completions per second on one hot instance, and the conflicts that reach workers (issue 19).

    python benchmarks/bench_hot_instance.py [--pg URL] [--instances 30] [--tasks 50]
                                            [--processes 3] [--threads 8]

One instance at a time of ``processes/example_process.bpmn`` with ``--tasks`` parallel external
tasks is started; ``--processes`` worker processes with ``--threads`` threads each fetch one
task at a time and complete it at once, without any retry of their own, so every
``ConcurrencyConflict`` (or any other error) a ``complete()`` raises is counted as reaching a
worker. The next instance starts when the last one completed. ``--instances 30`` is three times
the 10-instance run of issue 19 (where 1.1% of the completions raised ``ConcurrencyConflict``).

Reported: completions, wall time, completions/s on the hot instance, outcomes by kind (True,
duplicates, conflicts, other errors) and whether every instance completed with one end event.
Runs against PostgreSQL (``--pg``, default the local ``spillway_bench_hostile`` database,
truncated first) or, with ``--sqlite PATH``, a SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import ConcurrencyConflict, ProcessEngine

BPMN = Path(__file__).resolve().parent.parent / "processes" / "example_process.bpmn"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/spillway_bench_hostile"
TABLES = (
    "sw_deployments, sw_resources, sw_definitions, sw_instances, sw_history, "
    "sw_subscriptions, sw_jobs, sw_incidents, sw_external_tasks, sw_outbox"
)


def worker(url: str, threads: int, stop_file: str) -> None:
    """One worker process: ``threads`` threads fetch and complete until ``stop_file`` exists."""
    eng = ProcessEngine(url)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def loop(name: str) -> None:
        while not os.path.exists(stop_file):
            tasks = eng.external_tasks.fetch_and_lock(name, topics=["copy"], max_tasks=1)
            if not tasks:
                time.sleep(0.005)
                continue
            for task in tasks:
                try:
                    ok = eng.external_tasks.complete(task.id, name, {"copy": task.id})
                    kind = "applied" if ok else "duplicate"
                except ConcurrencyConflict:
                    kind = "conflict"
                except Exception as exc:
                    kind = f"error {type(exc).__name__}"
                with lock:
                    outcomes[kind] += 1

    pid = os.getpid()
    pool = [threading.Thread(target=loop, args=(f"w{pid}-{i}",)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    outcomes["conflicts_retried_inside"] = eng.stats["conflicts_retried"]
    eng.close()
    print(json.dumps(dict(outcomes)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--sqlite", default=None, help="a SQLite file instead of PostgreSQL")
    ap.add_argument("--instances", type=int, default=30)
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.worker[2])
        return
    url = f"sqlite:///{args.sqlite}" if args.sqlite else args.pg
    eng = ProcessEngine(url)
    if eng.store.dialect == "postgresql":
        with eng.store.transaction() as conn:
            conn.exec_driver_sql(f"TRUNCATE {TABLES}")
    eng.deploy(BPMN)
    stop_file = os.path.join(tempfile.mkdtemp(), "stop")
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, str(args.threads), stop_file],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.processes)
    ]
    time.sleep(1.0)  # let the workers import and connect
    files = [f"f{n}" for n in range(args.tasks)]
    busy = 0.0
    ids = []
    for _ in range(args.instances):
        inst = eng.start("ExampleProcess", variables={"files": files})
        ids.append(inst.id)
        began = time.perf_counter()
        while eng.get_instance(inst.id).state != "completed":
            if time.perf_counter() - began > 120:
                raise SystemExit(f"instance {inst.id} stalled: {eng.get_instance(inst.id)}")
            time.sleep(0.002)
        busy += time.perf_counter() - began
    Path(stop_file).touch()
    totals: Counter[str] = Counter()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        totals.update(json.loads(out.strip().splitlines()[-1]))
    ends = sum(1 for iid in ids for h in eng.history(iid) if h.activity_id == "EndEvent_Copied")
    completions = args.instances * args.tasks
    reached = sum(
        v
        for k, v in totals.items()
        if k not in ("applied", "duplicate") and k != "conflicts_retried_inside"
    )
    print(f"database: {eng.store.dialect}; {args.processes} processes x {args.threads} threads")
    print(f"{args.instances} hot instances x {args.tasks} parallel tasks = {completions}")
    print(f"time with an instance running: {busy:.2f} s; {completions / busy:.0f} completions/s")
    print(f"outcomes: {dict(totals)}")
    print(f"errors reaching workers: {reached} ({100 * reached / completions:.2f}%)")
    print(f"instances completed with one end event: {ends} of {args.instances}")
    eng.close()


if __name__ == "__main__":
    main()
