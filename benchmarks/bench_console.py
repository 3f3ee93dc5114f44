"""The operator console's reads with 100,000 instances: a page of the instance list (first page
and page 1,000, by keyset), the per-activity token counts of the process page, and the process
summary. Baseline in the same run: the same deep page read with OFFSET, as a naive list would.

    python benchmarks/bench_console.py [--instances 100000] [--runs 20] \
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/spillway_bench_console]

Instances are bulk-inserted as the engine stores them (two thirds active, each with one open
history row at its waiting activity, one third completed); the engine's own statements
(``engine.http.console.queries``) are timed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from engine import ProcessEngine
from engine.http.console import queries
from engine.storage import schema as t

WAIT = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" '
    'targetNamespace="t"><bpmn:process id="Wait" isExecutable="true"><bpmn:startEvent id="s"/>'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="Review"/><bpmn:userTask id="Review"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="Review" targetRef="Check"/><bpmn:userTask id="Check"/>'
    '<bpmn:sequenceFlow id="f3" sourceRef="Check" targetRef="e"/><bpmn:endEvent id="e"/>'
    "</bpmn:process></bpmn:definitions>"
)


def fill(eng: ProcessEngine, count: int) -> str:
    eng.deploy(WAIT.encode())
    definition = eng.store.latest_definition("Wait")
    assert definition is not None
    start = datetime(2030, 1, 1, tzinfo=UTC)
    batch = 5000
    for first in range(0, count, batch):
        instances, history = [], []
        for n in range(first, min(first + batch, count)):
            iid = uuid.uuid4().hex
            active = n % 3 != 0
            at = start + timedelta(seconds=n)
            instances.append(
                {
                    "id": iid,
                    "definition_id": definition["id"],
                    "process_key": "Wait",
                    "version": 1,
                    "business_key": f"B-{n}",
                    "state": "active" if active else "completed",
                    "waiting_at": ["Review" if n % 2 else "Check"] if active else [],
                    "variables": {"n": n},
                    "open_activities": {},
                    "data": "{}",
                    "format": 1,
                    "rev": 1,
                    "created_at": at,
                    "updated_at": at,
                    "ended_at": None if active else at,
                    "suspended": False,
                }
            )
            if active:
                history.append(
                    {
                        "id": uuid.uuid4().hex,
                        "instance_id": iid,
                        "seq": 1,
                        "activity_id": "Review" if n % 2 else "Check",
                        "activity_name": None,
                        "activity_type": "userTask",
                        "started_at": at,
                        "ended_at": None,
                        "outcome": None,
                        "error": None,
                    }
                )
        with eng.store.transaction() as conn:
            conn.execute(t.instances.insert(), instances)
            conn.execute(t.history.insert(), history)
    with eng.store.transaction() as conn:
        conn.exec_driver_sql("ANALYZE")
    return str(definition["id"])


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def offset_page(eng: ProcessEngine, offset: int, size: int) -> list[Any]:
    i = t.instances
    query = (
        sa.select(*[c for c in i.c if c.name not in ("data", "open_activities")])
        .order_by(i.c.created_at.desc(), i.c.id.desc())
        .offset(offset)
        .limit(size)
    )
    with eng.store.transaction(write=False) as conn:
        return list(conn.execute(query))


def run(label: str, url: str, count: int, runs: int) -> None:
    eng = ProcessEngine(url)
    try:
        t0 = time.perf_counter()
        definition_id = fill(eng, count)
        print(f"{label}: {count:,} instances inserted in {time.perf_counter() - t0:.1f} s")
        size = queries.PAGE_SIZE
        depth = 1000 * size if 1000 * size < count else count // 2
        cursor = None
        where = queries.InstanceFilter()
        # The cursor of page 1,000 (the page the operator reached by "older" 999 times).
        i = t.instances
        with eng.store.transaction(write=False) as conn:
            row = conn.execute(
                sa.select(i.c.created_at, i.c.id)
                .order_by(i.c.created_at.desc(), i.c.id.desc())
                .offset(depth - 1)
                .limit(1)
            ).first()
        assert row is not None
        cursor = queries.encode_cursor(row[0], row[1])
        keyed = queries.InstanceFilter(process_key="Wait", state="active")
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("instance list, first page", lambda: queries.instance_page(eng, where, None)),
            (
                f"instance list, page {depth // size + 1:,} (keyset)",
                lambda: queries.instance_page(eng, where, cursor),
            ),
            (
                f"baseline: the same page by OFFSET {depth:,}",
                lambda: offset_page(eng, depth, size),
            ),
            (
                "instance list, key + state active, deep page (keyset)",
                lambda: queries.instance_page(eng, keyed, cursor),
            ),
            (
                "process page: tokens per activity",
                lambda: queries.activity_counts(eng, definition_id),
            ),
            ("processes page: counts per key", lambda: queries.processes(eng)),
        ]
        for name, fn in cases:
            median, p99 = timed(fn, runs)
            print(f"  {name:58s} median {median:8.2f} ms   p99 {p99:8.2f} ms")
    finally:
        eng.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pg", help="a PostgreSQL URL (its tables are dropped and refilled)")
    args = parser.parse_args()
    print(f"{platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite file", f"sqlite:///{tmp}/console.db", args.instances, args.runs)
    if args.pg:
        admin = sa.make_url(args.pg)
        server = sa.create_engine(admin.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{admin.database}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{admin.database}"')
        server.dispose()
        run("PostgreSQL", args.pg, args.instances, args.runs)


if __name__ == "__main__":
    main()
