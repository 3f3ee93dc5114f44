"""Resident memory of one engine process while instances wait and jobs run; state size per
waiting instance of the example processes.

    python benchmarks/bench_memory.py [--waiting 100000] [--jobs 10000] [--pg URL] [--db URL]

1. ``--waiting`` instances are started through ``start()`` and left waiting at a user task
   (with candidates); the process's resident set size (RSS: psutil if installed, else
   ``/proc/self/statm``) is sampled every tenth of them. Then ``--jobs`` instances each commit
   a job (async-before service task) and the job executor (4 threads) runs them while the
   waiting ones stay, RSS sampled every second. The baseline is the RSS after 1,000 warm-up
   calls of each kind, in the same process; bounded means the samples stop growing with the
   number of instances (what grows per instance would show as a slope: printed per 10,000).
2. Every cache of the engine (``ProcessEngine.caches()``) with its size and bound at the end.
3. For each example process of ``processes/``: the bytes stored for one instance waiting at
   its first wait state, table by table (the lengths of the stored values: the state document,
   variables, history, task, job and external-task rows).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from engine import ProcessEngine
from engine.storage import schema as t
from tests import query_plans

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """The process's current resident set size in bytes."""
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:  # no /proc: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mib(n: float) -> str:
    return f"{n / 2**20:7.1f} MiB"


def reset_url(url: str) -> None:
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        return
    base = sa.make_url(url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{base.database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{base.database}"')
    admin.dispose()


def waiting_and_jobs(url: str, waiting: int, jobs: int) -> None:
    reset_url(url)
    eng = ProcessEngine(url)
    query_plans.deploy_scale_processes(eng)
    for _ in range(1000):  # warm-up: caches, pools, lazily imported modules
        eng.complete_task(eng.start("scale_wait").id, "Approve")
        eng.start("scale_job")
    eng.run_jobs()
    gc.collect()
    base, objects = rss(), len(gc.get_objects())
    print(f"baseline after warm-up: RSS {mib(base)}, {objects:,} Python objects")
    print(f"\n{waiting:,} instances started and left waiting at a user task:")
    step = max(1, waiting // 10)
    samples = [(0, base)]
    t0 = time.perf_counter()
    for n in range(1, waiting + 1):
        eng.start("scale_wait")
        if n % step == 0:
            samples.append((n, rss()))
            print(
                f"  {n:>9,} waiting: RSS {mib(samples[-1][1])} ({time.perf_counter() - t0:.0f} s)"
            )
    slope = (samples[-1][1] - samples[len(samples) // 2][1]) / max(
        1, samples[-1][0] - samples[len(samples) // 2][0]
    )
    print(f"  growth over the second half: {slope * 10_000 / 1024:.0f} KiB per 10,000 instances")
    print(f"\n{jobs:,} jobs run by the job executor (4 threads) beside them:")
    for _ in range(jobs):
        eng.start("scale_job")
    before_jobs = rss()
    peak = before_jobs
    executor = eng.job_executor(workers=4).start()
    t0 = time.perf_counter()
    try:
        while eng.jobs(limit=1) and time.perf_counter() - t0 < 3600:
            time.sleep(1.0)
            peak = max(peak, rss())
    finally:
        executor.stop()
    elapsed = time.perf_counter() - t0
    gc.collect()
    after = rss()
    print(f"  done in {elapsed:.0f} s ({jobs / elapsed:.0f} jobs/s)")
    print(f"  RSS before {mib(before_jobs)}, peak while running {mib(peak)}, after {mib(after)}")
    print(f"  Python objects: {objects:,} at the baseline, {len(gc.get_objects()):,} at the end")
    print(
        "  peak RSS of the process (getrusage): "
        + mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    )
    print("\ncaches (size / bound):")
    for cache in eng.caches():
        print(f"  {cache.name:24} {len(cache):>6} / {cache.maxsize}")
    eng.close()


#: Example processes, the variables that bring each to its first wait, as the demo does.
EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("order", {"amount": 5000, "card": "4111"}),
    ("invoice", {"invoice_no": "INV-1", "lines": [{"qty": 2, "price": 19.5}]}),
    ("onboarding", {"name": "Ada Lovelace", "manager": "grace"}),
    ("ExampleProcess", {}),
    (
        "shipment",
        {"orderId": "A-1", "items": [{"sku": "A1", "weight": 2}, {"sku": "B2", "weight": 3.5}]},
    ),
]


def stored_bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict | list):
        return len(json.dumps(value).encode())
    return len(str(value).encode())


def state_sizes() -> None:
    import processes
    from processes import example_process_handlers

    folder = tempfile.mkdtemp(prefix="spillway-memory-")
    eng = ProcessEngine(f"sqlite:///{folder}/examples.db")
    processes.register(eng)
    eng.deploy(Path(processes.__file__).parent)
    print("\nstate per waiting instance of the example processes (bytes stored):")
    print(
        f"  {'process':16} {'waits at':34} {'state doc':>9} {'variables':>9} {'all rows':>9}  rows"
    )
    for key, variables in EXAMPLES:
        if key == "ExampleProcess":
            variables = {"files": example_process_handlers.files()}
        inst = eng.start(key, variables)
        sizes: dict[str, int] = {}
        with eng.store.engine.connect() as conn:
            for table in t.metadata.sorted_tables:
                col = table.c.id if table is t.instances else table.c.get("instance_id")
                if col is None:
                    continue
                for row in conn.execute(sa.select(table).where(col == inst.id)).mappings():
                    sizes[table.name] = sizes.get(table.name, 0) + sum(
                        stored_bytes(v) for v in row.values()
                    )
            row = (
                conn.execute(sa.select(t.instances).where(t.instances.c.id == inst.id))
                .mappings()
                .one()
            )
        waits = ", ".join(inst.waiting_at) or inst.state
        if len(waits) > 34:
            waits = waits[:31] + "..."
        detail = ", ".join(f"{name.removeprefix('sw_')} {n:,}" for name, n in sorted(sizes.items()))
        print(
            f"  {key:16} {waits:34} {stored_bytes(row['data']):>9,} "
            f"{stored_bytes(row['variables']):>9,} {sum(sizes.values()):>9,}  {detail}"
        )
    eng.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--waiting", type=int, default=100_000)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--db", default=f"sqlite:///{tempfile.gettempdir()}/spillway-bench-memory.db")
    ap.add_argument("--pg", help="PostgreSQL URL instead of --db (the database is recreated)")
    ap.add_argument("--sizes-only", action="store_true", help="only the example state sizes")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, {platform.machine()}")
    if not args.sizes_only:
        url = args.pg or args.db
        print(f"database: {sa.make_url(url).get_backend_name()}")
        waiting_and_jobs(url, args.waiting, args.jobs)
    state_sizes()


if __name__ == "__main__":
    main()
