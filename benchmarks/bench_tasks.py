"""Task list: one user's open tasks among many open tasks.

    python benchmarks/bench_tasks.py [--tasks 100000] [--pg URL]

``--tasks`` open user tasks spread over 1,000 users (assignee) and 500 candidate groups are
written with bulk inserts, in the rows the engine writes (``engine.storage.schema.user_tasks``
and ``task_candidates``); 200 of them come from real instances started through the engine, so
the listed rows are the engine's own. Then, per backend, the median and p99 time of:

- ``eng.tasks(assignee=U)``: one user's assigned tasks (about ``tasks / 1000`` rows);
- ``eng.tasks(candidate_user=U, candidate_group=[G1, G2])``: the unassigned tasks one user may
  claim directly or through two groups.

Baseline in the same run: the same calls with the task-list indexes dropped (what a table
without them costs), so the figure shows what the indexes buy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import ProcessEngine
from engine.storage import schema as t
from engine.storage.user_tasks import candidate_rows
from tests.bpmnbuild import process

USERS = 1000
GROUPS = 500
XML = process(
    "tasklist",
    '<bpmn:userTask id="Work" camunda:assignee="${who}" camunda:candidateGroups="${group}" />',
)
INDEXES = [
    ("sw_user_tasks", "ix_sw_user_tasks_assignee"),
    ("sw_task_candidates", "ix_sw_task_candidates_listing"),
]


def fill(eng: ProcessEngine, count: int) -> None:
    eng.deploy(XML)
    for n in range(200):
        eng.start("tasklist", {"who": f"user-{n % USERS}", "group": f"group-{n % GROUPS}"})
    base = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    for n in range(count - 200):
        tid = uuid.uuid4().hex
        iid = uuid.uuid4().hex
        assigned = n % 3 != 0  # a third unassigned, claimable through groups / users
        row: dict[str, Any] = {
            "id": tid,
            "instance_id": iid,
            "task_id": str(uuid.uuid4()),
            "activity_id": "Work",
            "name": None,
            "process_key": "tasklist",
            "assignee": f"user-{n % USERS}" if assigned else None,
            "candidate_users": [] if assigned else [f"user-{(n * 7) % USERS}"],
            "candidate_groups": [f"group-{n % GROUPS}"],
            "due_at": None,
            "follow_up_at": None,
            "priority": 50,
            "form_key": None,
            "rev": 1,
            "created_at": base + timedelta(seconds=n),
        }
        batch.append(row)
        candidates += candidate_rows(row)
        if len(batch) >= 5000:
            with eng.store.transaction() as conn:
                conn.execute(t.user_tasks.insert(), batch)
                conn.execute(t.task_candidates.insert(), candidates)
            batch, candidates = [], []
    if batch:
        with eng.store.transaction() as conn:
            conn.execute(t.user_tasks.insert(), batch)
            conn.execute(t.task_candidates.insert(), candidates)
    with eng.store.transaction() as conn:
        conn.exec_driver_sql("ANALYZE")


def timed(fn: object, runs: int) -> tuple[float, float, int]:
    times = []
    rows = 0
    for n in range(runs):
        start = time.perf_counter()
        rows = len(fn(n))  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1000, times[int(0.99 * (len(times) - 1))] * 1000, rows


def measure(eng: ProcessEngine, runs: int) -> dict[str, tuple[float, float, int]]:
    return {
        "assignee": timed(lambda n: eng.tasks(assignee=f"user-{(n * 37) % USERS}"), runs),
        "candidate": timed(
            lambda n: eng.tasks(
                candidate_user=f"user-{(n * 37) % USERS}",
                candidate_group=[f"group-{n % GROUPS}", f"group-{(n + 1) % GROUPS}"],
            ),
            runs,
        ),
    }


def drop_indexes(eng: ProcessEngine) -> None:
    with eng.store.transaction() as conn:
        for _table, name in INDEXES:
            conn.exec_driver_sql(f"DROP INDEX {name}")
        conn.exec_driver_sql("ANALYZE")


def restore_indexes(eng: ProcessEngine) -> None:
    with eng.store.transaction() as conn:
        for table, name in INDEXES:
            index = next(i for i in t.metadata.tables[table].indexes if i.name == name)
            index.create(conn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--pg", default=os.environ.get("SPILLWAY_BENCH_PG"))
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{args.tasks:,} open user tasks, {USERS} users, {GROUPS} groups; {args.runs} calls each")
    backends = [("SQLite file", f"sqlite:///{Path(tempfile.mkdtemp()) / 'tasks.db'}")]
    if args.pg:
        backends.append(("PostgreSQL", args.pg))
    for label, url in backends:
        eng = ProcessEngine(url)
        if eng.store.dialect == "postgresql":
            with eng.store.transaction() as conn:
                conn.exec_driver_sql(
                    "TRUNCATE sw_user_tasks, sw_task_candidates, sw_instances, sw_history, "
                    "sw_definitions, sw_deployments, sw_resources, sw_jobs, sw_subscriptions"
                )
        start = time.perf_counter()
        fill(eng, args.tasks)
        print(f"\n{label}: filled in {time.perf_counter() - start:.1f} s")
        indexed = measure(eng, args.runs)
        drop_indexes(eng)
        try:
            bare = measure(eng, max(10, args.runs // 10))
        finally:
            restore_indexes(eng)
        for name in indexed:
            med, p99, rows = indexed[name]
            bmed, bp99, _ = bare[name]
            print(
                f"  tasks({name}): {rows} rows, median {med:.2f} ms, p99 {p99:.2f} ms"
                f"   | without indexes: median {bmed:.2f} ms, p99 {bp99:.2f} ms"
            )
        eng.close()


if __name__ == "__main__":
    main()
