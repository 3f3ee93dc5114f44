"""History cleanup: ended instances with their history removed, rows/s, flat in size.

    python benchmarks/bench_cleanup.py [--sizes 20000,50000,100000] [--pg URL] [--no-sqlite]

For each size N, N ended instances of a process with ``camunda:historyTimeToLive="1"`` are
written with bulk inserts, each a copy of a real completed instance (its ``sw_instances`` row
and its 4 ``sw_history`` rows) plus one ``sw_variable_history`` row, ended two days ago. Then
``eng.cleanup_history()`` removes them all: instances/s and rows/s (every row deleted, the
instance rows included). While it runs, a second thread keeps calling ``eng.start()`` on
another process: its median and worst latency show that the batches (100 instances per
transaction, 5 ms apart) leave room for the executor's own writes. Baseline in the same run:
the same ``start()`` calls with no cleanup running.

The issue's target is 1,000,000 instances; on the shared 2-core machine of the measurement the
default sizes keep a run within a couple of minutes. A rate that stays flat from the smallest to
the largest size is what lets the figure be carried to larger sizes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import ProcessEngine
from engine.storage import schema as t
from tests.bpmnbuild import process, user

ENDED = process("ended", user("A"), user("B"), process_attrs='camunda:historyTimeToLive="1"')
LIVE = process("live", user("Wait"))
BATCH = 5000


def fill(eng: ProcessEngine, count: int) -> int:
    """``count`` ended instances with their history; returns the rows written."""
    eng.deploy(ENDED)
    real = eng.start("ended", {"n": 1})
    eng.complete_task(real.id, "A")
    eng.complete_task(real.id, "B")
    row = eng.store.instance(real.id)
    history = eng.store.history(real.id)
    assert row is not None
    ended_at = eng.clock.now() - timedelta(days=2)
    rows = 0
    instances: list[dict[str, Any]] = []
    hist: list[dict[str, Any]] = []
    variables: list[dict[str, Any]] = []

    def flush() -> None:
        with eng.store.transaction() as conn:
            conn.execute(t.instances.insert(), instances)
            conn.execute(t.history.insert(), hist)
            conn.execute(t.variable_history.insert(), variables)
        instances.clear()
        hist.clear()
        variables.clear()

    for _ in range(count):
        iid = uuid.uuid4().hex
        instances.append({**row, "id": iid, "ended_at": ended_at, "created_at": ended_at})
        hist.extend({**h, "id": uuid.uuid4().hex, "instance_id": iid} for h in history)
        variables.append(
            {
                "id": uuid.uuid4().hex,
                "instance_id": iid,
                "pos": 0,
                "name": "n",
                "operation": "set",
                "value": 2,
                "user_id": "bench",
                "created_at": ended_at,
            }
        )
        rows += 2 + len(history)
        if len(instances) >= BATCH:
            flush()
    if instances:
        flush()
    with eng.store.transaction() as conn:
        conn.exec_driver_sql("ANALYZE")
    return rows


def starts_while(eng: ProcessEngine, busy: threading.Event | None, seconds: float) -> list[float]:
    """Latencies (ms) of start() calls, for ``seconds`` or while ``busy`` is set."""
    latencies = []
    deadline = time.perf_counter() + seconds
    while busy.is_set() if busy is not None else time.perf_counter() < deadline:
        began = time.perf_counter()
        eng.start("live")
        latencies.append((time.perf_counter() - began) * 1000)
        time.sleep(0.005)
    return latencies


def measure(url: str, size: int) -> dict[str, float]:
    eng = ProcessEngine(url)
    eng.deploy(LIVE)
    rows = fill(eng, size)
    baseline = starts_while(eng, None, 2.0)
    busy = threading.Event()
    busy.set()
    latencies: list[float] = []
    probe = threading.Thread(target=lambda: latencies.extend(starts_while(eng, busy, 0)))
    probe.start()
    began = time.perf_counter()
    removed = eng.cleanup_history()
    elapsed = time.perf_counter() - began
    busy.clear()
    probe.join()
    assert removed == size, removed  # the real one ended just now and stays
    eng.close()
    return {
        "size": size,
        "seconds": elapsed,
        "instances_per_s": removed / elapsed,
        "rows_per_s": rows / elapsed,
        "start_median": statistics.median(latencies) if latencies else 0.0,
        "start_max": max(latencies) if latencies else 0.0,
        "base_median": statistics.median(baseline),
        "base_max": max(baseline),
    }


def fresh(url: str) -> str:
    if url.startswith("postgresql"):
        eng = ProcessEngine(url)
        with eng.store.transaction() as conn:
            conn.exec_driver_sql(
                "TRUNCATE sw_deployments, sw_resources, sw_definitions, sw_instances, sw_history, "
                "sw_subscriptions, sw_jobs, sw_incidents, sw_external_tasks, sw_outbox, "
                "sw_user_tasks, sw_task_candidates, sw_variable_history"
            )
        eng.close()
        return url
    return f"sqlite:///{Path(tempfile.mkdtemp()) / 'cleanup.db'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="20000,50000,100000")
    ap.add_argument("--pg", default=os.environ.get("SPILLWAY_BENCH_PG"))
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    backends = [] if args.no_sqlite else [("SQLite file", "sqlite")]
    if args.pg:
        backends.append(("PostgreSQL", args.pg))
    for label, url in backends:
        print(f"\n{label}")
        print(
            "  instances   seconds   instances/s    rows/s   start() during: median / max ms"
            "   baseline: median / max ms"
        )
        for size in sizes:
            r = measure(fresh(url), size)
            print(
                f"  {size:>9,}  {r['seconds']:>8.1f}  {r['instances_per_s']:>12,.0f}"
                f"  {r['rows_per_s']:>8,.0f}   {r['start_median']:>7.1f} / {r['start_max']:>7.1f}"
                f"   {r['base_median']:>7.1f} / {r['base_max']:>7.1f}"
            )


if __name__ == "__main__":
    main()
