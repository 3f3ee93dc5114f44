"""Cost of the per-call paths on a large database, beside an empty one, in the same run.

    python benchmarks/bench_scale.py [--scale 1.0] [--pg URL] [--calls 200] [--rounds 3]
                                     [--reuse] [--plans FILE]

The large database holds, at ``--scale 1``, 1,000,000 ended instances (10 history rows each:
10,000,000) and 100,000 waiting ones (60% at a user task with candidates, 20% at a timer due in
a year, 10% at an external task of another topic, 10% in an incident). It is built by bulk
inserts, not by the engine: the engine runs one instance of each kind first, and its rows (in
every table, read back as the engine wrote them) are the templates; each clone gets its times
shifted so that instances are spread over the past 400 days (ended) or 30 days (waiting), and
new ids (every id column, and the instance id inside the state document) as the engine makes
them at that time (time-ordered, ``engine.core.ids``); clones are written in the order of
their times, as an engine running those days would have written them. Rows go in through
the driver with SQLAlchemy's own bind processors (the stored bytes are those the engine
writes): ``executemany`` on SQLite, ``COPY`` on PostgreSQL. A schema change that adds a
column or a table is therefore followed by the builder (it copies what the engine wrote).

Measured, in rounds alternating between the empty and the large database (so that load on a
shared machine touches both alike): ``start()`` of a one-service-task process, ``complete_task``
of a waiting user task, one job (``run_jobs(max_jobs=1)``: acquisition and run of an
async-before service task), ``fetch_and_lock`` of one external task; and on the large database
the listings with a limit of 50. ``--plans FILE`` writes the query plan of every statement those
calls run on the large database (captured at the driver, ``tests/query_plans.py``).
``--reuse`` keeps a large database built by an earlier run of the same scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from engine import ProcessEngine
from engine.core.ids import id_at
from engine.core.retry import RetryPolicy
from engine.storage import schema as t
from tests import query_plans

ENDED = 1_000_000
WAITING = 100_000
#: The waiting instances' kinds (process key, share).
WAITING_MIX = (
    ("scale_wait", 0.6),
    ("scale_timer", 0.2),
    ("scale_backlog", 0.1),
    ("scale_incident", 0.1),
)
BATCH = 5_000  # instances per transaction of the build
MARKER = "bench_scale"  # business key of the build's marker instance


def new_engine(url: str) -> ProcessEngine:
    # retries=0: the incident kind fails straight into its incident.
    eng = ProcessEngine(url, retry_policy=RetryPolicy(retries=0))
    query_plans.deploy_scale_processes(eng)
    return eng


# -- templates ------------------------------------------------------------------------------

Template = dict[str, list[dict[str, Any]]]  # table name -> rows of one instance


def template(eng: ProcessEngine, key: str) -> Template:
    """Every row the engine wrote for one fresh instance of ``key``, by table."""
    inst = eng.start(key)
    rows: Template = {}
    with eng.store.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            col = table.c.id if table is t.instances else table.c.get("instance_id")
            if col is None:
                continue
            found = [
                dict(r) for r in conn.execute(sa.select(table).where(col == inst.id)).mappings()
            ]
            if found:
                rows[table.name] = found
    return rows


class Cloner:
    """Copies of one template with fresh ids and shifted times, as driver-ready tuples.

    Each column of each template row is one of: a constant (converted once), an id renewed
    per clone, a time shifted per clone, or the state document (the instance id replaced)."""

    CONST, ID, TIME, DATA = range(4)

    def __init__(self, tpl: Template, dialect: sa.Dialect, plain_json: bool = False) -> None:
        self.iid = tpl["sw_instances"][0]["id"]
        self.born: datetime = tpl["sw_instances"][0]["created_at"]
        # Every id value of the template that a clone must renew (row ids, the instance id).
        ids = {self.iid}
        for rows in tpl.values():
            for row in rows:
                if isinstance(row.get("id"), str):
                    ids.add(row["id"])
        self.ids = sorted(ids)
        self.rows_plan: list[tuple[str, list[tuple[int, Any, Any]]]] = []
        for name, rows in tpl.items():
            table = t.metadata.tables[name]
            for row in rows:
                slots = []
                for col in table.c:
                    proc = col.type.dialect_impl(dialect).bind_processor(dialect)
                    if plain_json:
                        # COPY takes plain values: JSON as its text, times as aware datetimes.
                        proc = _json_text if isinstance(col.type, sa.JSON) else None
                    value = row[col.name]
                    if isinstance(value, datetime):
                        slots.append((self.TIME, value, proc))
                    elif isinstance(value, str) and value in ids:
                        slots.append((self.ID, self.ids.index(value), None))
                    elif col.name == "data" and name == "sw_instances":
                        slots.append((self.DATA, value, proc))
                    else:
                        slots.append((self.CONST, proc(value) if proc else value, None))
                self.rows_plan.append((name, slots))

    def rows(self, created: datetime, rng: random.Random) -> Iterator[tuple[str, tuple[Any, ...]]]:
        shift = created - self.born
        # The ids the engine would have given these rows when they were written (time-ordered,
        # engine.core.ids), so that the large database's indexes look like those of one grown
        # by the engine over the days the clones span.
        unix_ms = int(created.timestamp() * 1000)
        new_ids = [id_at(unix_ms, rng.getrandbits(74)) for _ in self.ids]
        new_iid = new_ids[self.ids.index(self.iid)]
        for name, slots in self.rows_plan:
            out = []
            for kind, value, proc in slots:
                if kind == self.CONST:
                    out.append(value)
                elif kind == self.ID:
                    out.append(new_ids[value])
                elif kind == self.TIME:
                    out.append(proc(value + shift) if proc else value + shift)
                else:
                    data = value.replace(self.iid, new_iid)
                    out.append(proc(data) if proc else data)
            yield name, tuple(out)


def _json_text(value: Any) -> Any:
    return None if value is None else json.dumps(value)


# -- bulk insert ----------------------------------------------------------------------------


def bulk_insert(eng: ProcessEngine, batch: dict[str, list[tuple[Any, ...]]]) -> None:
    with eng.store.transaction() as conn:  # one write transaction (BEGIN IMMEDIATE on SQLite)
        raw: Any = conn.connection.dbapi_connection
        cur = raw.cursor()
        if eng.store.dialect == "sqlite":
            cur.execute("PRAGMA cache_size=-256000")  # 256 MB: a batch's pages stay in memory
        for name, rows in batch.items():
            table = t.metadata.tables[name]
            cols = [c.name for c in table.c]
            if eng.store.dialect == "sqlite":
                sql = str(table.insert().compile(dialect=conn.dialect))
                cur.executemany(sql, rows)
            else:
                quoted = ", ".join(f'"{c}"' for c in cols)
                with cur.copy(f"COPY {name} ({quoted}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        cur.close()


def build(eng: ProcessEngine, scale: float) -> dict[str, Any]:
    """Fill ``eng``'s database: ENDED * scale ended and WAITING * scale waiting instances.

    The clones of every kind are written in the order of their creation times, as an engine
    running those days would have written them: each index grows at its right edge."""
    dialect = eng.store.engine.dialect
    kinds = [("scale_ended", round(ENDED * scale), 400)] + [
        (key, round(WAITING * scale * share), 30) for key, share in WAITING_MIX
    ]
    t0 = time.perf_counter()
    now = eng.now()
    counts: dict[str, int] = {}
    rng = random.Random(18)
    plain = eng.store.dialect != "sqlite"
    cloners = [Cloner(template(eng, key), dialect, plain_json=plain) for key, _, _ in kinds]
    births = sorted(
        (now - timedelta(days=days) + timedelta(seconds=rng.random() * days * 86400), kind)
        for kind, (_, count, days) in enumerate(kinds)
        for _ in range(count)
    )
    step = max(len(births) // 10, 1)
    for first in range(0, len(births), BATCH):
        batch: dict[str, list[tuple[Any, ...]]] = {}
        for created, kind in births[first : first + BATCH]:
            for name, row in cloners[kind].rows(created, rng):
                batch.setdefault(name, []).append(row)
        for name, rows in batch.items():
            counts[name] = counts.get(name, 0) + len(rows)
        bulk_insert(eng, batch)
        done = min(first + BATCH, len(births))
        if done // step != first // step or done == len(births):
            print(
                f"  built {done:,} of {len(births):,} instances ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    if eng.store.dialect == "postgresql":
        with eng.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")  # what autovacuum does after bulk loads
    eng.start("scale_sync", business_key=MARKER)
    return {"seconds": time.perf_counter() - t0, "rows": counts}


# -- measurement ----------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def one_round(engines: list[ProcessEngine], calls: int) -> list[dict[str, list[float]]]:
    """``calls`` of each kind on each engine, alternating engines call by call."""
    out: list[dict[str, list[float]]] = [
        {"start": [], "complete": [], "job": [], "fetch": []} for _ in engines
    ]
    clock = time.perf_counter
    for _ in range(calls):
        for eng, times in zip(engines, out, strict=True):
            t0 = clock()
            eng.start("scale_sync")
            times["start"].append(clock() - t0)
    waiting = [[eng.start("scale_wait").id for _ in range(calls)] for eng in engines]
    for i in range(calls):
        for eng, times, ids in zip(engines, out, waiting, strict=True):
            t0 = clock()
            eng.complete_task(ids[i], "Approve")
            times["complete"].append(clock() - t0)
    for eng in engines:
        for _ in range(calls):
            eng.start("scale_job")
    for _ in range(calls):
        for eng, times in zip(engines, out, strict=True):
            t0 = clock()
            eng.run_jobs(max_jobs=1)
            times["job"].append(clock() - t0)
    for eng in engines:
        for _ in range(calls):
            eng.start("scale_external")
    for _ in range(calls):
        for eng, times in zip(engines, out, strict=True):
            t0 = clock()
            (task,) = eng.external_tasks.fetch_and_lock("w", ["scale"], 1)
            times["fetch"].append(clock() - t0)
            eng.external_tasks.complete(task.id, "w")
    return out


def listings(eng: ProcessEngine, repeat: int = 20) -> dict[str, float]:
    calls: dict[str, Callable[[], Any]] = {
        "instances(state='active', limit=50)": lambda: eng.instances(state="active", limit=50),
        "instances(state='completed', limit=50)": lambda: eng.instances(
            state="completed", limit=50
        ),
        "jobs(limit=50)": lambda: eng.jobs(limit=50),
        "incidents(limit=50)": lambda: eng.incidents(limit=50),
        "tasks(limit=50)": lambda: eng.tasks(limit=50),
        "tasks(candidate_group='clerks', limit=50)": lambda: eng.tasks(
            candidate_group="clerks", limit=50
        ),
        "tasks(candidate_user='ann', limit=50)": lambda: eng.tasks(candidate_user="ann", limit=50),
    }
    out = {}
    for name, fn in calls.items():
        out[name] = statistics.median(timed(fn) for _ in range(repeat))
    return out


def write_plans(eng: ProcessEngine, path: Path) -> list[str]:
    """Plans of every statement of the hot calls and listings; returns the full scans seen."""
    with query_plans.capturing(eng.store.engine) as log:
        query_plans.hot_calls(eng)
        query_plans.listing_calls(eng)
        eng.store.next_due_job()
    scans = []
    with path.open("w") as out:
        for st in log.statements:
            lines = query_plans.plan(eng.store.engine, st)
            full = query_plans.full_scans(eng.store.engine, lines)
            flag = " FULL SCAN OF " + ", ".join(full) if full else ""
            if query_plans.sorts_everything(eng.store.engine, lines):
                flag += " SORT"
            sql = st.sql if len(st.sql) < 600 else st.sql[:600] + "..."
            out.write(f"-- {sql}{flag}\n" + "".join(f"   {line}\n" for line in lines) + "\n")
            if full:
                scans.append(f"{','.join(full)}: {st.sql[:120]}")
    return scans


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def urls(args: argparse.Namespace) -> tuple[str, str]:
    tag = f"{args.scale:g}".replace(".", "_")
    if args.pg:
        base = sa.make_url(args.pg)
        admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
        empty, large = f"{base.database}_empty", f"{base.database}_{tag}"
        with admin.connect() as conn:
            for name in (empty, large):
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
                if exists and (name == empty or not args.reuse):
                    conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
                    exists = None
                if not exists:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        return base.set(database=empty).render_as_string(False), base.set(
            database=large
        ).render_as_string(False)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    empty_path, large_path = folder / "scale_empty.db", folder / f"scale_{tag}.db"
    for path in [empty_path] + ([] if args.reuse else [large_path]):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{empty_path}", f"sqlite:///{large_path}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--pg", help="PostgreSQL URL; its database name is the prefix of two")
    ap.add_argument("--dir", default="/tmp/spillway-bench-scale", help="SQLite files' folder")
    ap.add_argument("--calls", type=int, default=200, help="calls of each kind per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="keep a large database already built")
    ap.add_argument("--plans", help="write the large database's query plans to this file")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, {platform.machine()}")
    c0 = time.process_time()
    empty_url, large_url = urls(args)
    empty, large = new_engine(empty_url), new_engine(large_url)
    built = large.instances(business_key=MARKER, limit=1) if args.reuse else []
    if built:
        print("large database reused")
    else:
        print(f"building {args.scale:g} x ({ENDED:,} ended + {WAITING:,} waiting instances)")
        report = build(large, args.scale)
        print(
            f"built in {report['seconds']:.0f} s "
            f"({time.process_time() - c0:.0f} s CPU of this process): "
            + ", ".join(f"{name} {n:,}" for name, n in sorted(report["rows"].items()))
        )
    one_round([empty, large], 20)  # warm caches and connections
    samples: dict[str, dict[str, list[float]]] = {"empty": {}, "large": {}}
    for _ in range(args.rounds):
        for label, got in zip(samples, one_round([empty, large], args.calls), strict=True):
            for op, values in got.items():
                samples[label].setdefault(op, []).extend(values)
    heads = ("empty p50", "large p50", "ratio", "empty p99", "large p99")
    print(f"\n{'call':10} " + " ".join(f"{h:>10}" for h in heads))
    for op in samples["empty"]:
        e, g = samples["empty"][op], samples["large"][op]
        ratio = statistics.median(g) / statistics.median(e)
        print(
            f"{op:10} {statistics.median(e) * 1e3:8.2f}ms {statistics.median(g) * 1e3:8.2f}ms "
            f"{ratio:10.2f} {pct(e, 0.99) * 1e3:8.2f}ms {pct(g, 0.99) * 1e3:8.2f}ms"
        )
    print("\nlistings on the large database (median of 20):")
    for name, seconds in listings(large).items():
        print(f"  {name:45} {seconds * 1e3:7.2f} ms")
    if args.plans:
        scans = write_plans(large, Path(args.plans))
        print(f"\nplans written to {args.plans}; full scans: {scans or 'none'}")
    empty.close()
    large.close()


if __name__ == "__main__":
    main()
