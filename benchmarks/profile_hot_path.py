"""Where one ``start()`` and one job spend their time: shares by part, from a sampling profile.

    python benchmarks/profile_hot_path.py [--count 3000] [--db URL]

Runs, in one process: ``--count`` starts of a one-service-task process (the start of
bench_core.py), then ``--count`` starts of the same process whose handler fails its first
attempt (not measured: they make the jobs), then ``run_jobs()`` draining those retry jobs in
this thread (the job of bench_jobs.py's fail-once drain). The process samples itself with
py-spy (``pip install py-spy``; ``py-spy record --idle --format raw``, 1,000 samples a second
of this thread's wall time, waits for the database included). cProfile would inflate the code
that makes many small Python calls, SpiffWorkflow's most; py-spy pauses the process for each
sample instead, which makes every call slower by about the same factor (the times printed are
those under the sampler; the shares are the result).

Every sample is given to the first part of ``PARTS`` one of its frames belongs to, so the shares
of a table add up to 100%.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import ProcessEngine, RetryPolicy, TaskContext
from tests.bpmnbuild import process, service

#: (part, frame names that put a sample in it); the first part a sample matches wins.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("serialize the instance state (JSON)", ("InstanceCodec.dump",)),
    ("deserialize the instance state", ("InstanceCodec.load",)),
    ("database: the write transaction", ("Store.apply",)),
    (
        "database: reads (latest definition, acquire jobs)",
        ("Store.", "JobQueries.", "Commands.latest_definition"),
    ),
    ("SpiffWorkflow: build the workflow", ("BpmnWorkflow.__init__",)),
    (
        "SpiffWorkflow: engine steps, completing tasks",
        ("do_engine_steps", "Task.complete", "Task.run", "Task.error"),
    ),
    ("the handler call (context, mappings, copies)", ("Activation.", "behaviors/")),
    ("finish: history, variables, waits, job rows", ("finish.", "Ledger.", "ledger.py")),
    ("the run's own bookkeeping (Run, Commands, load)", ("Run.", "Commands.", "JobRunner.")),
]
#: The function each measured table's samples run under.
TABLES = {"measure_starts": "one start()", "measure_jobs": "one job (fail-once retry)"}


def one_task() -> bytes:
    return process("one", service("Work", "work"))


def flaky_task() -> bytes:
    return process("flaky", service("Work", "flaky"))


def measure_starts(eng: ProcessEngine, count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        eng.start("one")
    return time.perf_counter() - t0


def prepare_jobs(eng: ProcessEngine, count: int) -> None:
    for _ in range(count):
        eng.start("flaky")
    time.sleep(0.01)  # every retry is due


def measure_jobs(eng: ProcessEngine, count: int) -> float:
    t0 = time.perf_counter()
    ran = eng.run_jobs()
    assert ran == count, (ran, count)
    return time.perf_counter() - t0


def workload(url: str, count: int) -> tuple[float, float]:
    logging.getLogger("spillway").setLevel(logging.ERROR)  # a line per failed first attempt
    eng = ProcessEngine(url, retry_policy=RetryPolicy(retries=3, initial_delay=0.001, jitter=0))

    def flaky(ctx: TaskContext) -> dict[str, bool]:
        if ctx.attempt == 1:
            raise ConnectionError("first attempt fails")
        return {"ok": True}

    eng.register_handler("work", lambda ctx: {"done": True})
    eng.register_handler("flaky", flaky)
    eng.deploy(one_task())
    eng.deploy(flaky_task())
    for _ in range(20):
        eng.start("one")
    starts = measure_starts(eng, count)
    prepare_jobs(eng, count)
    jobs = measure_jobs(eng, count)
    eng.close()
    return starts, jobs


def part_of(frames: list[str]) -> str:
    for part, names in PARTS:
        if any(name in frame for frame in frames for name in names):
            return part
    return "other (garbage collection, logging, the loop)"


def shares_from_pyspy(raw: Path) -> dict[str, Counter[str]]:
    tables: dict[str, Counter[str]] = {t: Counter() for t in TABLES}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        table = next((t for t in TABLES if any(f.startswith(f"{t} ") for f in frames)), None)
        if table is None:
            continue
        below = frames[next(i for i, f in enumerate(frames) if f.startswith(f"{table} ")) :]
        tables[table][part_of(below[1:])] += int(count)
    return tables


def show(tables: dict[str, Counter[str]], how: str, seconds: dict[str, float], count: int) -> None:
    print(f"\nshares of wall time ({how})")
    for table, title in TABLES.items():
        parts = tables[table]
        total = sum(parts.values()) or 1
        per = seconds[table] / count * 1000
        print(f"\n  {title}: {per:.3f} ms each ({count} in {seconds[table]:.2f} s)")
        for part, value in parts.most_common():
            print(f"    {part:<52} {100 * value / total:5.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--db", help="SQLAlchemy URL (default: a fresh SQLite file)")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # the file the timings go to
    args = ap.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'profile.db'}"
    if args.child:
        starts, jobs = workload(url, args.count)
        Path(args.child).write_text(f"{starts} {jobs}")
        return
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {url}")
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("profile_hot_path.py samples with py-spy: pip install py-spy")
    folder = Path(tempfile.mkdtemp())
    raw, times = folder / "samples.txt", folder / "times.txt"
    record = [pyspy, "record", "--idle", "-r", "1000", "--format", "raw", "-o", str(raw)]
    child = [sys.executable, __file__, "--child", str(times), "--count", str(args.count)]
    subprocess.run([*record, "--", *child, "--db", url], check=True, capture_output=True)
    seconds = dict(zip(TABLES, map(float, times.read_text().split()), strict=True))
    show(shares_from_pyspy(raw), "py-spy, sampled", seconds, args.count)


if __name__ == "__main__":
    main()
