"""The per-call statements and the operator's listings are index lookups, not table scans.

A behaviour test of the schema's indexes (docs/benchmarks.md, "Scale"): every statement that a
start, a complete, a job, a fetch-and-lock and its completion run is captured at the driver and
its SQLite query plan (EXPLAIN QUERY PLAN) read; none may read a whole table of those that grow
with the number of instances. The listings with a limit must also read in index order, so that
the limit stops the read (no sort of every matching row). What they cost on a large database is
measured by ``benchmarks/bench_scale.py``, never here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.core.errors import EngineError
from engine.core.retry import RetryPolicy
from engine.testing import ManualClock
from tests import query_plans
from tests.conftest import EngineFactory

#: Tables that grow with the instances; a hot statement never scans one of them.
GROWING = {
    "sw_instances",
    "sw_history",
    "sw_jobs",
    "sw_incidents",
    "sw_external_tasks",
    "sw_subscriptions",
    "sw_user_tasks",
    "sw_task_candidates",
    "sw_variable_history",
}


@pytest.fixture
def sqlite_eng(tmp_path: Path) -> Iterator[ProcessEngine]:
    eng = ProcessEngine(
        f"sqlite:///{tmp_path / 'plans.db'}",
        clock=ManualClock(),
        retry_policy=RetryPolicy(retries=0),
    )
    query_plans.deploy_scale_processes(eng)
    # Waiting instances of every kind, so each table has rows the planner must not scan.
    for key in ("scale_wait", "scale_timer", "scale_backlog", "scale_incident", "scale_ended"):
        eng.start(key)
    query_plans.hot_calls(eng)  # once before capturing: caches warm, as in a running engine
    yield eng
    eng.close()


def plans(eng: ProcessEngine, log: query_plans.StatementLog) -> list[tuple[str, list[str]]]:
    return [(st.sql, query_plans.plan(eng.store.engine, st)) for st in log.statements]


def test_hot_statements_scan_no_growing_table(sqlite_eng: ProcessEngine) -> None:
    with query_plans.capturing(sqlite_eng.store.engine) as log:
        query_plans.hot_calls(sqlite_eng)
    found = plans(sqlite_eng, log)
    # The capture saw the whole path: every kind of statement on every table it writes.
    text = "\n".join(sql for sql, _ in found)
    for expected in (
        "INSERT INTO sw_instances",
        "UPDATE sw_instances",
        "INSERT INTO sw_history",
        "UPDATE sw_history",
        "UPDATE sw_jobs",
        "FROM sw_jobs",
        "INSERT INTO sw_user_tasks",
        "DELETE FROM sw_user_tasks",
        "INSERT INTO sw_external_tasks",
        "FROM sw_external_tasks",
    ):
        assert expected in text, f"no statement {expected!r} captured"
    scans = [
        (sql, lines)
        for sql, lines in found
        if GROWING & set(query_plans.full_scans(sqlite_eng.store.engine, lines))
    ]
    assert scans == []
    # Acquisition walks only runnable jobs: those out of retries (an incident open, as the
    # fixture's scale_incident instance has) are not in the partial index it reads.
    (acquire,) = [
        lines for sql, lines in found if "FROM sw_jobs" in sql and "ORDER BY sw_jobs.due_at" in sql
    ]
    assert "USING INDEX ix_sw_jobs_runnable" in acquire[0], acquire


def test_listings_with_a_limit_read_in_index_order(sqlite_eng: ProcessEngine) -> None:
    with query_plans.capturing(sqlite_eng.store.engine) as log:
        query_plans.listing_calls(sqlite_eng)
    found = plans(sqlite_eng, log)
    assert len(found) == 6  # one statement per listing
    for sql, lines in found:
        assert not GROWING & set(query_plans.full_scans(sqlite_eng.store.engine, lines)), (
            sql,
            lines,
        )
        if "sw_task_candidates" not in sql:
            # Read in the listing's whole order: no sort at all, not even of a page's tail.
            assert not any("TEMP B-TREE" in line for line in lines), (sql, lines)
            continue
        # A candidate's tasks: its oldest ``limit`` read in order from the listing index
        # (kind, name, created_at, task_id) and stopped there (no sort inside that read);
        # only those up to ``limit`` rows per candidate are sorted at the end.
        assert any("INDEX ix_sw_task_candidates_listing (kind=? AND name=?)" in x for x in lines)
        inner = lines[: next(i for i, x in enumerate(lines) if x.startswith("SCAN anon_1"))]
        assert not query_plans.sorts_everything(sqlite_eng.store.engine, inner), (sql, lines)


def test_idle_wait_and_due_gauge_read_the_job_indexes(sqlite_eng: ProcessEngine) -> None:
    # The executor's idle check and the metrics' due-jobs gauge read the partial indexes of
    # runnable jobs (by due time) and of locked jobs (by lock end), never every runnable job.
    from engine.storage import gauges

    store = sqlite_eng.store
    with query_plans.capturing(store.engine) as log:
        store.next_due_job()
        store.next_due_job({"work"})
        gauges.due_jobs(store, sqlite_eng.now())
    found = plans(sqlite_eng, log)
    assert len(found) == 5  # two reads per idle check (each with and without handlers), one count
    for sql, lines in found:
        assert not GROWING & set(query_plans.full_scans(store.engine, lines)), (sql, lines)
        index = "ix_sw_jobs_locked" if "ORDER BY sw_jobs.lock_expires_at" in sql else None
        assert f"USING INDEX {index or 'ix_sw_jobs_runnable'}" in lines[0], (sql, lines)
    (count,) = [lines for sql, lines in found if "count(" in sql]
    assert "ix_sw_jobs_runnable (due_at<?)" in count[0], count


def test_reads_by_business_key_and_by_instance_use_the_lean_indexes(
    sqlite_eng: ProcessEngine,
) -> None:
    # Migration 0010: the business-key index holds only instances with a key (partial), and
    # an instance's history is read through ix_sw_history_open (the lone instance_id index
    # is gone). Both reads must still be index lookups.
    keyed = sqlite_eng.start("scale_wait", business_key="order-7")
    with query_plans.capturing(sqlite_eng.store.engine) as log:
        found = sqlite_eng.instances(business_key="order-7")
        entries = sqlite_eng.history(keyed.id)
    assert [i.id for i in found] == [keyed.id]
    assert [e.activity_id for e in entries][:1] == ["StartEvent_1"]
    by_key = [plan for sql, plan in plans(sqlite_eng, log) if "business_key =" in sql]
    by_instance = [
        plan for sql, plan in plans(sqlite_eng, log) if "FROM sw_history" in sql.split("WHERE")[0]
    ]
    assert by_key and by_instance
    assert "USING INDEX ix_sw_instances_business_key (business_key=?)" in by_key[0][0]
    assert "USING INDEX ix_sw_history_open (instance_id=?)" in by_instance[0][0]


def test_an_unindexed_query_is_reported_as_a_scan(sqlite_eng: ProcessEngine) -> None:
    # The plan reading itself: a filter on a column without an index is a full scan.
    import sqlalchemy as sa

    from engine.storage import schema

    query = sa.select(schema.history).where(schema.history.c.activity_id == "Approve")
    sql = str(query.compile(compile_kwargs={"literal_binds": True}))
    lines = query_plans.plan(sqlite_eng.store.engine, query_plans.Statement(sql))
    assert query_plans.full_scans(sqlite_eng.store.engine, lines) == ["sw_history"]


def test_listings_return_the_oldest_up_to_the_limit(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=RetryPolicy(retries=0))
    query_plans.deploy_scale_processes(eng)
    started = []
    for _ in range(3):
        started.append(eng.start("scale_wait").id)
        eng.start("scale_timer")
        eng.start("scale_incident")
        clock.advance(timedelta(seconds=1))
    active = [i.id for i in eng.instances(state="active")]
    assert [i.id for i in eng.instances(state="active", limit=2)] == active[:2]
    assert [i.id for i in eng.instances(process_key="scale_wait", limit=2)] == started[:2]
    assert [j.id for j in eng.jobs(limit=2)] == [j.id for j in eng.jobs()][:2]
    assert len(eng.jobs(limit=100)) == len(eng.jobs()) == 6
    incidents = eng.incidents()
    assert len(incidents) == 3
    assert [i.id for i in eng.incidents(limit=1)] == [incidents[0].id]
    assert [t.instance_id for t in eng.tasks(limit=2)] == started[:2]
    assert [t.instance_id for t in eng.tasks(candidate_group="clerks", limit=1)] == started[:1]
    # Several candidates: each one's oldest, merged in order, a task once; claimed ones skipped.
    mine = eng.tasks(candidate_user="ann", limit=2)
    assert [t.instance_id for t in mine] == started[:2]
    mine = eng.tasks(candidate_user="bob", candidate_group="clerks", limit=2)
    assert [t.instance_id for t in mine] == started[:2]
    first = eng.tasks(instance_id=started[0])[0]
    eng.claim(first.id, "carl")
    both = eng.tasks(candidate_user="ann", candidate_group=["clerks", "nobody"], limit=2)
    assert [t.instance_id for t in both] == started[1:3]
    assert [t.instance_id for t in eng.tasks(candidate_user="ann", limit=5)] == started[1:]
    assert eng.tasks(candidate_user="carl", limit=5) == []
    for bad in (0, -1, True, "5"):
        for listing in (eng.instances, eng.jobs, eng.incidents, eng.tasks):
            with pytest.raises(EngineError, match="limit"):
                listing(limit=bad)
