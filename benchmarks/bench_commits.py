"""The physical limit of this machine: commits per second of SQLite and PostgreSQL.

    python benchmarks/bench_commits.py [--seconds 2] [--row-bytes 1500] [--pg URL]

Every engine call that changes an instance is one write transaction, so no call can run more
often than the database commits. Measured here, in one run, one thread, each for ``--seconds``:

- a round trip that writes nothing (``SELECT 1``), through the driver;
- a transaction inserting one row of ``--row-bytes`` (about what a one-task instance's row
  holds) and committing, through the driver (``sqlite3`` / ``psycopg``) with nothing around it;
- the same transaction through SQLAlchemy Core (a pooled connection, a compiled statement), as
  the engine issues it.

SQLite: a file in a fresh temporary folder, WAL, ``synchronous=NORMAL`` (the engine's setting:
a commit is not flushed to disk, a power loss may lose the last commits but never corrupts)
and ``synchronous=FULL`` (every commit flushed). PostgreSQL: the server's own settings
(``synchronous_commit`` is printed), a scratch table created and dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

SCRATCH = "sw_bench_commits"


def rate(seconds: float, op: Callable[[], None]) -> float:
    """Operations per second of ``op`` run back to back for ``seconds`` (after a warm-up)."""
    for _ in range(50):
        op()
    done, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(20):
            op()
        done += 20
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - t0)


def sqlite_driver(path: Path, synchronous: str, payload: str, seconds: float) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SCRATCH} (id TEXT PRIMARY KEY, data TEXT)")

    def round_trip() -> None:
        conn.execute("SELECT 1").fetchone()

    def commit() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"INSERT INTO {SCRATCH} VALUES (?, ?)", (uuid.uuid4().hex, payload))
        conn.execute("COMMIT")

    try:
        return {"round trips/s": rate(seconds, round_trip), "commits/s": rate(seconds, commit)}
    finally:
        conn.close()


def postgres_driver(url: sa.URL, payload: str, seconds: float) -> dict[str, float]:
    import psycopg

    conn = psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
    )
    try:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SCRATCH} (id TEXT PRIMARY KEY, data TEXT)")
        conn.commit()
        row = conn.execute("SHOW synchronous_commit").fetchone()
        conn.commit()
        print(f"  PostgreSQL synchronous_commit = {row[0] if row else '?'}")
        conn.autocommit = True

        def round_trip() -> None:
            conn.execute("SELECT 1").fetchone()

        def commit() -> None:
            with conn.transaction():
                conn.execute(f"INSERT INTO {SCRATCH} VALUES (%s, %s)", (uuid.uuid4().hex, payload))

        return {"round trips/s": rate(seconds, round_trip), "commits/s": rate(seconds, commit)}
    finally:
        conn.close()


def through_sqlalchemy(url: str, payload: str, seconds: float) -> float:
    """Commits/s of the one-row transaction issued through SQLAlchemy Core."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    table = sa.Table(
        SCRATCH,
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("data", sa.Text),
    )
    table.metadata.create_all(engine)
    insert = table.insert()

    def commit() -> None:
        with engine.begin() as conn:
            conn.execute(insert, [{"id": uuid.uuid4().hex, "data": payload}])

    try:
        return rate(seconds, commit)
    finally:
        engine.dispose()


def show(name: str, figures: dict[str, float]) -> None:
    cells = "   ".join(f"{v:9,.0f} {k}" for k, v in figures.items())
    print(f"  {name:<42} {cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--row-bytes", type=int, default=1500)
    ap.add_argument("--pg", default=os.environ.get("SPILLWAY_BENCH_PG"))
    args = ap.parse_args()
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu}, "
        f"Python {platform.python_version()}"
    )
    payload = "x" * args.row_bytes
    tmp = Path(tempfile.mkdtemp())
    print(f"\none thread, {args.seconds:g} s each, rows of {args.row_bytes} bytes")
    show(
        "SQLite file, WAL, synchronous=NORMAL",
        sqlite_driver(tmp / "n.db", "NORMAL", payload, args.seconds),
    )
    show(
        "SQLite file, WAL, synchronous=FULL",
        sqlite_driver(tmp / "f.db", "FULL", payload, args.seconds),
    )
    show(
        "SQLite file, NORMAL, through SQLAlchemy Core",
        {"commits/s": through_sqlalchemy(f"sqlite:///{tmp / 'a.db'}", payload, args.seconds)},
    )
    if args.pg:
        url = sa.make_url(args.pg)
        show("PostgreSQL, psycopg", postgres_driver(url, payload, args.seconds))
        show(
            "PostgreSQL, through SQLAlchemy Core",
            {"commits/s": through_sqlalchemy(args.pg, payload, args.seconds)},
        )
        engine = sa.create_engine(args.pg)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {SCRATCH}")
        engine.dispose()


if __name__ == "__main__":
    main()
