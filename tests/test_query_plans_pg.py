"""PostgreSQL's planner on a task list with many unassigned tasks: a candidate's limited list
reads the candidates' index in order and stops, as on SQLite (tests/test_query_plans.py).

PostgreSQL plans from column statistics, so the table holds thousands of analysed rows here: a
condition the statistics cannot estimate (``coalesce(assignee, '') = ''`` was guessed to keep
0.5% of the tasks) made it scan every task and sort (185 ms for 60,000 tasks against 0.9 ms;
docs/benchmarks.md, "Scale")."""

from __future__ import annotations

import pytest

from engine import ProcessEngine
from tests import query_plans
from tests.conftest import pg_url, reset_pg

TASKS = 20_000


def _engine_with(tables: str, *inserts: str) -> ProcessEngine:
    """An engine on the emptied test database after ``inserts``, ``tables`` analysed (the
    planner decides by their statistics)."""
    url = pg_url()
    reset_pg(url)
    eng = ProcessEngine(url)
    with eng.store.transaction() as conn:
        for sql in inserts:
            conn.exec_driver_sql(sql)
    with eng.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"ANALYZE {tables}")
    return eng


@pytest.mark.postgres
def test_a_candidates_limited_list_reads_the_candidates_index() -> None:
    eng = _engine_with(
        "sw_user_tasks, sw_task_candidates",
        "INSERT INTO sw_user_tasks (id, instance_id, task_id, activity_id, name,"
        " process_key, assignee, candidate_users, candidate_groups, priority, rev,"
        " created_at)"
        " SELECT 't' || lpad(g::text, 6, '0'), 'i' || g, 's' || g, 'Approve', 'Approve',"
        " 'order', CASE WHEN mod(g, 10) = 0 THEN 'bob' END, '[]', '[\"clerks\"]', 50, 1,"
        " timestamptz '2026-01-01' + g * interval '1 second'"
        f" FROM generate_series(1, {TASKS}) g",
        "INSERT INTO sw_task_candidates (task_id, kind, name, instance_id, created_at)"
        " SELECT id, 'group', 'clerks', instance_id, created_at FROM sw_user_tasks",
    )

    with query_plans.capturing(eng.store.engine) as log:
        found = eng.tasks(candidate_group="clerks", limit=50)
    # The oldest 50 unassigned ones (every tenth task is bob's).
    expected = [f"t{n:06d}" for n in range(1, 56) if n % 10][:50]
    assert [t.id for t in found] == expected
    (statement,) = [st for st in log.statements if "sw_task_candidates" in st.sql]
    lines = query_plans.plan(eng.store.engine, statement)
    text = "\n".join(lines)
    assert "ix_sw_task_candidates_listing" in text, text
    assert "sw_user_tasks" not in query_plans.full_scans(eng.store.engine, lines), text
    eng.close()


@pytest.mark.postgres
def test_the_open_incidents_limited_list_reads_in_order() -> None:
    # 10,000 open incidents were read and sorted for each page of 50 (5-12 ms) while the
    # index began with resolved_at: PostgreSQL does not read in order past an IS NULL column.
    eng = _engine_with(
        "sw_incidents",
        "INSERT INTO sw_incidents (id, instance_id, activity_id, kind, message, created_at,"
        " resolved_at) SELECT 'x' || lpad(g::text, 6, '0'), 'i' || g, 'Charge', 'failedJob',"
        " 'backend down', timestamptz '2026-01-01' + g * interval '1 second',"
        " CASE WHEN mod(g, 4) = 0 THEN timestamptz '2026-06-01' END"
        f" FROM generate_series(1, {TASKS}) g",
    )
    with query_plans.capturing(eng.store.engine) as log:
        found = eng.incidents(limit=50)
    assert [i.id for i in found] == [f"x{n:06d}" for n in range(1, 67) if n % 4][:50]
    (statement,) = log.statements
    lines = query_plans.plan(eng.store.engine, statement)
    text = "\n".join(lines)
    assert "ix_sw_incidents_open" in text, text
    assert not query_plans.sorts_everything(eng.store.engine, lines), text
    eng.close()


@pytest.mark.postgres
def test_the_acquisition_is_planned_for_its_values_in_its_own_transaction() -> None:
    # A generic plan costed from a young database's statistics made each job 3x dearer as the
    # tables grew (docs/benchmarks.md, "Scale"): the acquisition's transaction asks for plans
    # of its actual values, and the setting ends with that transaction.
    url = pg_url()
    reset_pg(url)
    eng = ProcessEngine(url)
    query_plans.deploy_scale_processes(eng)
    started = [eng.start("scale_job").id for _ in range(8)]  # more than psycopg's threshold
    with query_plans.capturing(eng.store.engine) as log:
        assert eng.run_jobs() == 8
    assert {eng.get_instance(i).state for i in started} == {"completed"}
    sql = log.trace
    custom = [n for n, text in enumerate(sql) if "plan_cache_mode = force_custom_plan" in text]
    acquisitions = [n for n, text in enumerate(sql) if "ORDER BY sw_jobs.due_at" in text]
    assert acquisitions and len(custom) == len(acquisitions)
    # Each acquisition's statement comes right after its transaction's setting.
    assert [n + 1 for n in custom] == acquisitions
    assert all(sql[n].startswith("SET LOCAL") for n in custom)
    with eng.store.engine.connect() as conn:  # a pooled connection: the setting did not stay
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "auto"
    eng.close()
