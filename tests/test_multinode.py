"""Three ``spillway worker`` processes share PostgreSQL; one is killed with SIGKILL mid-run.

2,000 instances whose service task fails twice (the synchronous attempt and the first job
attempt) must all complete: no job lost, no attempt running twice at the same time, and
every attempt that finished recorded exactly once. The handler logs each attempt's start and
end in a table of its own, written outside the engine's transactions, so the log also holds
attempts whose outcome was never committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine import ProcessEngine
from engine.work.executor import DEFAULT_GROUP_SIZE
from tests.bpmnbuild import process, service
from tests.conftest import pg_url, reset_pg

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INSTANCES = 2000
WORKERS = 3

APP = textwrap.dedent(
    """
    import os, threading, time
    import psycopg
    from engine import ProcessEngine, RetryPolicy

    _local = threading.local()

    def _log():
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = psycopg.connect(os.environ["ATTEMPT_LOG_DSN"], autocommit=True)
        return conn

    def flaky(ctx):
        log = _log()
        row = log.execute(
            "INSERT INTO attempt_log (key, attempt, pid, started)"
            " VALUES (%s, %s, %s, clock_timestamp()) RETURNING id",
            (ctx.idempotency_key, ctx.attempt, os.getpid()),
        ).fetchone()
        time.sleep(0.002)  # long enough for overlapping attempts to show
        log.execute("UPDATE attempt_log SET ended = clock_timestamp() WHERE id = %s", row)
        if ctx.attempt <= 2:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return {"done_at_attempt": ctx.attempt}

    def make():
        eng = ProcessEngine(
            os.environ["SPILLWAY_DB"],
            retry_policy=RetryPolicy(retries=3, initial_delay=0.05, max_delay=0.05, jitter=0),
        )
        eng.register_handler("flaky", flaky)
        return eng
    """
)


def _dsn(url: str) -> str:
    u = sa.make_url(url)
    return f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"


def test_three_workers_one_killed_drain_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_url()
    reset_pg(url)
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS attempt_log")
        conn.exec_driver_sql(
            "CREATE TABLE attempt_log (id bigserial PRIMARY KEY, key text NOT NULL, "
            "attempt int NOT NULL, pid int NOT NULL, started timestamptz NOT NULL, "
            "ended timestamptz)"
        )
    (tmp_path / "crashapp.py").write_text(APP)
    env = dict(os.environ)
    env.update(
        SPILLWAY_DB=url,
        ATTEMPT_LOG_DSN=_dsn(url),
        PYTHONPATH=os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]),
    )
    monkeypatch.setenv("ATTEMPT_LOG_DSN", env["ATTEMPT_LOG_DSN"])
    monkeypatch.setenv("SPILLWAY_DB", url)
    sys.path.insert(0, str(tmp_path))
    try:
        import crashapp  # type: ignore[import-not-found]

        eng: ProcessEngine = crashapp.make()
    finally:
        sys.path.remove(str(tmp_path))
    eng.deploy(process("crash", service("Flaky", "flaky")))
    for n in range(INSTANCES):
        inst = eng.start("crash", variables={"n": n})
        assert inst.waiting_at == ["Flaky"]  # the synchronous attempt failed

    command = [
        sys.executable,
        "-c",
        "from engine.cli.main import main; raise SystemExit(main())",
        "--app",
        "crashapp:make",
        "worker",
        "--workers",
        "4",
        "--lock-duration",
        "3",
        "--max-idle-wait",
        "0.2",
        "--exit-when-idle",
    ]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(WORKERS)
    ]
    try:
        # Kill one worker once it has started attempts of its own.
        victim = workers[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with admin.connect() as conn:
                mine = conn.execute(
                    sa.text("SELECT count(*) FROM attempt_log WHERE pid = :p"), {"p": victim.pid}
                ).scalar_one()
            if mine >= 50:
                break
            time.sleep(0.05)
        assert mine >= 50, "the victim never started working"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at = time.time()
        for w in workers[1:]:
            w.wait(timeout=240)
            assert w.returncode == 0, w.stderr.read().decode()[-2000:] if w.stderr else ""
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
            for stream in (w.stdout, w.stderr):
                if stream:
                    stream.close()

    states = {i.state for i in eng.instances("crash")}
    assert len(eng.instances("crash", state="completed")) == INSTANCES, states
    assert eng.jobs() == [] and eng.incidents() == []
    with admin.connect() as conn:
        # Every instance took exactly three attempts whose outcome counted.
        done = conn.execute(
            sa.text(
                "SELECT count(*) FROM sw_history WHERE activity_id = 'Flaky' "
                "AND outcome = 'completed'"
            )
        ).scalar_one()
        assert done == INSTANCES
        # No two attempts of one task overlapped in time (an attempt cut short by the
        # kill ends at the kill).
        overlaps = conn.execute(
            sa.text(
                "SELECT count(*) FROM attempt_log a JOIN attempt_log b "
                "ON a.key = b.key AND a.id < b.id "
                "AND a.started < coalesce(b.ended, to_timestamp(:k)) "
                "AND b.started < coalesce(a.ended, to_timestamp(:k))"
            ),
            {"k": killed_at},
        ).scalar_one()
        assert overlaps == 0
        # Attempts that ran to the end ran once each; only attempts the kill cut short or
        # whose group had not committed yet may have been repeated.
        repeated = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT key, attempt FROM attempt_log "
                "WHERE ended IS NOT NULL GROUP BY key, attempt HAVING count(*) > 1) d"
            )
        ).scalar_one()
        interrupted = conn.execute(
            sa.text("SELECT count(*) FROM attempt_log WHERE ended IS NULL")
        ).scalar_one()
        # At most one group per victim thread was mid-flight: run, and not committed yet
        # (group commit, engine.work.executor); the jobs it had not started are not attempts.
        assert repeated <= 4 * DEFAULT_GROUP_SIZE
        assert interrupted <= 4
        assert (
            conn.execute(sa.text("SELECT count(DISTINCT key) FROM attempt_log")).scalar_one()
            == INSTANCES
        )
        conn.exec_driver_sql("DROP TABLE attempt_log")
    log_conn = getattr(crashapp._local, "conn", None)  # the in-process synchronous attempts'
    if log_conn is not None:
        log_conn.close()
    eng.close()
    admin.dispose()
