"""The seed's scenario: 200 ExampleProcess instances (10,000 parallel external tasks) drained by
in-process worker pools.

    python benchmarks/bench_external.py [--instances 200] [--nodes 1] [--pg URL]

Two runs per database: (1) pools run from the start while the main thread starts
``--instances`` instances of ``processes/example_process.bpmn`` (50 files each) as fast as it
can; (2) all instances are started first and the pools then drain them (the seed's measure: the
handling of the 10,000 tasks). Pools fetch, run ``copy_file`` and complete. ``--nodes N`` runs
N engines on the same database, each with its own pool (as N processes or hosts would; they race
for the same instances, so optimistic-locking conflicts show up and are retried inside the
engines). Handlers are trivial, so the figures are the engine's own cost.

Deliberate duplicates: every 10th completed task is completed again by a "redelivery" thread
with the pool's worker id, as a message bridge would after a lost acknowledgement; each must be
logged, ignored and counted, never applied.

Reported: start time, wall time to the last instance completed, tasks/s,
duplicates sent / ignored, conflicts retried, writes per instance, and the check that every
instance completed exactly once (one completed end event in its history, 50 distinct copies).
The seed measured 3-4 minutes for the same 10,000 tasks on Camunda + RabbitMQ + PostgreSQL.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from engine import ProcessEngine, TaskContext
from engine.storage import schema as t
from engine.work.pool import WorkerPool
from processes import example_process_handlers as example

BPMN = Path(__file__).resolve().parent.parent / "processes" / "example_process.bpmn"
TABLES = (
    "sw_deployments, sw_resources, sw_definitions, sw_instances, sw_history, "
    "sw_subscriptions, sw_jobs, sw_incidents, sw_external_tasks, sw_outbox"
)


def fresh_pg(url: str) -> str:
    eng = ProcessEngine(url)
    with eng.store.transaction() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLES}")
    eng.close()
    return url


class Redelivery:
    """Completes every ``every``-th handled task a second time, after its pool reported it."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.handled = 0
        self.lock = threading.Lock()
        self.queue: queue.Queue[tuple[ProcessEngine, str, str, dict[str, object]] | None] = (
            queue.Queue()
        )
        self.sent = 0
        self.ignored = 0
        self.applied = 0
        self.thread = threading.Thread(target=self._run, name="redelivery", daemon=True)

    def wrap(self, eng: ProcessEngine, pool_worker: list[str]) -> object:
        def handler(ctx: TaskContext) -> dict[str, object]:
            result = dict(example.copy_file(ctx))
            with self.lock:
                self.handled += 1
                again = self.handled % self.every == 0
            if again:
                self.queue.put((eng, ctx.idempotency_key, pool_worker[0], result))
            return result

        return handler

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            eng, task_id, worker, variables = item
            time.sleep(0.05)  # let the pool's own report land first, as a late redelivery does
            self.sent += 1
            if eng.external_tasks.complete(task_id, worker, variables):
                self.applied += 1  # the redelivery won the race; the pool's report is ignored
            else:
                self.ignored += 1

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join()


def run(
    url: str,
    instances: int,
    nodes: int,
    files: int,
    pool_options: dict[str, float],
    phased: bool,
) -> None:
    engines = [ProcessEngine(url) for _ in range(nodes)]
    redelivery = Redelivery(10)
    pools: list[WorkerPool] = []
    for eng in engines:
        worker: list[str] = []
        pool = eng.worker_pool(
            "copy",
            redelivery.wrap(eng, worker),  # type: ignore[arg-type]
            **pool_options,  # type: ignore[arg-type]
        )
        worker.append(pool.worker_id)
        pools.append(pool)
    example.register(engines[0])
    engines[0].deploy(BPMN)
    redelivery.thread.start()
    if not phased:
        for pool in pools:
            pool.start()

    started: list[str] = []
    t0 = time.perf_counter()
    for _ in range(instances):
        started.append(engines[0].start("ExampleProcess", {"files": example.files(files)}).id)
    t_started = time.perf_counter() - t0
    if phased:
        t0 = time.perf_counter()  # the drain alone, as the seed measured it
        for pool in pools:
            pool.start()
    # Completed instances, counted in SQL every 50 ms (cheap next to the work).
    count = (
        sa.select(sa.func.count())
        .select_from(t.instances)
        .where(t.instances.c.state == "completed")
    )
    while True:
        with engines[0].store.transaction(write=False) as conn:
            done = conn.execute(count).scalar_one()
        if done >= instances:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    for pool in pools:
        pool.stop(timeout=30)
    redelivery.stop()

    tasks = instances * files
    stats = [e.stats.snapshot() for e in engines]
    pool_stats = [p.stats.snapshot() for p in pools]
    conflicts = sum(s.get("conflicts_retried", 0) for s in stats)
    duplicates = sum(s.get("external_duplicates", 0) for s in stats)
    batches = sum(s.get("external_batches", 0) for s in stats)
    completed_by_pools = sum(p.get("completed", 0) for p in pool_stats)
    print(f"  started {instances} instances ({tasks} tasks) in {t_started:.2f} s")
    what = "pools started to" if phased else "first start to"
    print(f"  wall time, {what} last instance completed: {wall:.2f} s")
    print(f"  throughput: {tasks / wall:,.0f} tasks/s ({instances / wall:.1f} instances/s)")
    print(
        f"  duplicates: {redelivery.sent} sent again, {redelivery.ignored} ignored by the engine"
        f" (+{redelivery.applied} that overtook the pool's own report, which was then ignored);"
        f" engine counted {duplicates}"
    )
    print(f"  conflicts retried inside the engine: {conflicts}")
    print(
        f"  instance writes applying task reports: {batches}"
        f" ({batches / instances:.1f} per instance of {files} tasks)"
    )
    print(f"  pools: {', '.join(str(p) for p in pool_stats)}")
    check(engines[0], started, files)
    assert completed_by_pools + redelivery.applied == tasks, (completed_by_pools, tasks)
    assert duplicates == redelivery.sent, (duplicates, redelivery.sent)
    for eng in engines:
        eng.close()


def check(eng: ProcessEngine, ids: list[str], files: int) -> None:
    """Every instance completed exactly once, with each file copied once."""
    h = t.history
    ends = (
        sa.select(h.c.instance_id, sa.func.count())
        .where(h.c.activity_id == "EndEvent_Copied", h.c.outcome == "completed")
        .group_by(h.c.instance_id)
    )
    with eng.store.transaction(write=False) as conn:
        end_counts = dict(conn.execute(ends).all())
    bad = [i for i in ids if end_counts.get(i) != 1]
    wrong = []
    for inst in eng.instances(process_key="ExampleProcess"):
        copies = inst.variables.get("copies", [])
        if inst.state != "completed" or sorted(c["from"] for c in copies) != example.files(files):
            wrong.append(inst.id)
    ok = not bad and not wrong and len(end_counts) == len(ids)
    print(
        f"  check: {len(ids) - len(bad)}/{len(ids)} instances with exactly one completed end"
        f" event, {len(ids) - len(wrong)}/{len(ids)} with {files} distinct copies"
        f" -> {'OK' if ok else 'FAILED'}"
    )
    if not ok:
        raise SystemExit(f"check failed: ends {bad[:5]}, copies {wrong[:5]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--files", type=int, default=50, help="parallel tasks per instance")
    ap.add_argument(
        "--nodes", type=int, default=1, help="engines (each with a pool) sharing the db"
    )
    # One worker thread per pool: copy_file is trivial, so more threads only add GIL hand-offs.
    ap.add_argument("--core-size", type=int, default=1)
    ap.add_argument("--max-size", type=int, default=1)
    ap.add_argument("--max-per-acquisition", type=int, default=50)
    ap.add_argument("--acquire-wait", type=float, default=1.0, help="seconds")
    ap.add_argument(
        "--pool-defaults",
        action="store_true",
        help="eng.worker_pool(topic, fn) with the pool's own defaults (ignores the sizes above)",
    )
    ap.add_argument(
        "--modes", default="live,phased", help="live (pools run while starting), phased, or both"
    )
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--pg", default=os.environ.get("SPILLWAY_BENCH_PG"))
    args = ap.parse_args()
    # Duplicates are logged at WARNING by design; keep the benchmark's output readable.
    logging.basicConfig(level=logging.ERROR)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    options: dict[str, float] = {
        "core_size": args.core_size,
        "max_size": args.max_size,
        "max_per_acquisition": args.max_per_acquisition,
        "acquire_wait": args.acquire_wait,
    }
    if args.pool_defaults:
        options = {}
        print(f"pools: {args.nodes} node(s), each eng.worker_pool('copy', fn) with its defaults")
    else:
        print(
            f"pools: {args.nodes} node(s), each core_size={args.core_size} max_size="
            f"{args.max_size} max_per_acquisition={args.max_per_acquisition} acquire_wait="
            f"{args.acquire_wait}"
        )
    tmp = Path(tempfile.mkdtemp())
    modes = args.modes.split(",")
    for phased in [m == "phased" for m in ("live", "phased") if m in modes]:
        mode = (
            "all started first, then drained"
            if phased
            else "pools running while the instances are started"
        )
        if not args.no_sqlite:
            print(f"\nSQLite file (WAL), {mode}")
            url = f"sqlite:///{tmp / f'bench-{int(phased)}.db'}"
            run(url, args.instances, args.nodes, args.files, options, phased)
        if args.pg:
            print(f"\nPostgreSQL, {mode}")
            run(fresh_pg(args.pg), args.instances, args.nodes, args.files, options, phased)


if __name__ == "__main__":
    main()
