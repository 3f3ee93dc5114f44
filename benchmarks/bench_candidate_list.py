"""A candidate's task list with a limit, before and after migration 0009, on one database.

    python benchmarks/bench_candidate_list.py /tmp/spillway-bench-scale/scale_1.db [--runs 20]

Run on the large SQLite database ``benchmarks/bench_scale.py`` built (at ``--scale 1``: 60,000
open tasks of candidate group ``clerks`` and users ``ann``, ``bob``). Alternating call by call
in the same run: ``eng.tasks(candidate_group=..., limit=50)`` as it reads now (each candidate's
oldest tasks from ``ix_sw_task_candidates_listing``), and the statement it ran before 0009 (the
candidates' task ids from ``(kind, name, task_id)``, then every matching task sorted), with that
older index created for the run and dropped after. Prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import ProcessEngine

OLD_INDEX = "ix_sw_candidates_before_0009"
OLD = (
    "SELECT * FROM sw_user_tasks WHERE sw_user_tasks.id IN (SELECT task_id FROM"
    f" sw_task_candidates INDEXED BY {OLD_INDEX} WHERE kind = ? AND name = ?)"
    " AND coalesce(assignee, '') = '' ORDER BY created_at, id LIMIT 50"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("db", help="a SQLite file built by bench_scale.py")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    eng = ProcessEngine(f"sqlite:///{args.db}")
    with eng.store.transaction() as conn:
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {OLD_INDEX} ON sw_task_candidates (kind, name, task_id)"
        )
    try:
        for label, kind, name in (("group", "group", "clerks"), ("user", "user", "ann")):
            new_t: list[float] = []
            old_t: list[float] = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                if kind == "group":
                    new = eng.tasks(candidate_group=name, limit=50)
                else:
                    new = eng.tasks(candidate_user=name, limit=50)
                new_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with eng.store.transaction(write=False) as conn:
                    old = conn.exec_driver_sql(OLD, (kind, name)).all()
                old_t.append(time.perf_counter() - t0)
                assert [r.id for r in new] == [r[0] for r in old]
            a, b = statistics.median(old_t) * 1000, statistics.median(new_t) * 1000
            print(
                f"tasks(candidate_{label}={name!r}, limit=50): before 0009 {a:.2f} ms,"
                f" now {b:.2f} ms (before / now {a / b:.1f}; {len(new)} rows)"
            )
    finally:
        with eng.store.transaction() as conn:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {OLD_INDEX}")
        eng.close()


if __name__ == "__main__":
    main()
