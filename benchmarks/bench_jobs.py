"""Async on error and the job executor: cost, throughput, pickup latency.

    python benchmarks/bench_jobs.py [--instances 2000] [--jobs 10000] [--pg URL]

1. Happy-path cost of async-on-error: the same 5-service-task process started N times with
   ``async_on_error=True`` and with it off (the baseline), alternating in blocks, SQLite file.
2. Fail-once throughput: ``--jobs`` instances whose handler fails its synchronous attempt, so
   each leaves one retry job; then one process drains them (``eng.job_executor``, on SQLite
   with one thread and with ``--workers``, on PostgreSQL with ``--workers``) and each
   retry succeeds. Jobs/s from the first job run to the last commit, on SQLite and, with
   ``--pg``, on PostgreSQL. Baseline in the same run: the same number of ``start()`` calls
   that succeed at once (one engine command each, the floor a job's command cannot beat).
3. Pickup latency: from a retry job falling due to its attempt starting in the handler,
   with the executor in this process (woken by its own commit / the next due time) and in a
   separate ``spillway worker`` process (woken by LISTEN/NOTIFY on PostgreSQL, or its
   polling on SQLite). p50/p99 over ``--latency`` jobs due 200 ms after their failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_core import fresh_pg
from engine import ProcessEngine, RetryPolicy, TaskContext
from tests.bpmnbuild import process, service

FIVE = process("five", *(service(f"T{i}", "work") for i in range(5)))
ONE = process("one", service("Work", "flaky"))
FAST_RETRY = RetryPolicy(retries=3, initial_delay=0.001, max_delay=0.001, jitter=0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def happy_path(url: str, runs: int) -> dict[str, float]:
    engines = {}
    for flag in (True, False):
        eng = ProcessEngine(url, async_on_error=flag)
        eng.register_handler("work", lambda ctx: {"ok": True})
        eng.deploy(FIVE)
        for _ in range(50):
            eng.start("five")
        engines[flag] = eng
    totals = {True: 0.0, False: 0.0}
    block = 100
    for _ in range(runs // block):  # alternate so drift hits both sides alike
        for flag in (False, True):
            eng = engines[flag]
            t0 = time.perf_counter()
            for _ in range(block):
                eng.start("five")
            totals[flag] += time.perf_counter() - t0
    for eng in engines.values():
        eng.close()
    done = (runs // block) * block
    return {"on": done / totals[True], "off": done / totals[False]}


def fail_once(url: str, count: int, workers: int) -> dict[str, float]:
    eng = ProcessEngine(url, retry_policy=FAST_RETRY)

    def flaky(ctx: TaskContext) -> dict[str, bool]:
        if ctx.attempt == 1:
            raise ConnectionError("first attempt fails")
        return {"ok": True}

    eng.register_handler("flaky", flaky)
    eng.register_handler("work", lambda ctx: {"ok": True})
    eng.deploy(ONE)
    eng.deploy(process("ok", service("Work", "work")))
    t0 = time.perf_counter()
    for _ in range(count):
        eng.start("ok")
    baseline = count / (time.perf_counter() - t0)
    for _ in range(count):
        eng.start("one")
    time.sleep(0.01)  # every retry is due
    ex = eng.job_executor(workers=workers, max_idle_wait=0.05)
    t0 = time.perf_counter()
    ex.start()
    # Watch the executor's own counter: polling the jobs table (a MIN over 10,000 rows) every
    # few milliseconds would compete with the drain for the GIL and the database.
    while ex.executed < count:
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    assert eng.store.next_due_job() is None
    ex.stop()
    assert len(eng.instances("one", state="completed")) == count
    assert not eng.jobs()
    assert not eng.incidents()
    eng.close()
    return {"jobs_per_s": count / elapsed, "start_per_s": baseline, "seconds": elapsed}


def cpu_per_job(url: str, count: int) -> dict[str, float]:
    """The fail-once drain by ``run_jobs()`` in this thread: jobs/s and CPU seconds per job
    (``time.process_time``; less sensitive than wall time to other load on the machine)."""
    eng = ProcessEngine(url, retry_policy=FAST_RETRY)

    def flaky(ctx: TaskContext) -> dict[str, bool]:
        if ctx.attempt == 1:
            raise ConnectionError("first attempt fails")
        return {"ok": True}

    eng.register_handler("flaky", flaky)
    eng.deploy(ONE)
    for _ in range(count):
        eng.start("one")
    time.sleep(0.01)
    wall, cpu = time.perf_counter(), time.process_time()
    done = eng.run_jobs()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert done == count
    assert len(eng.instances("one", state="completed")) == count
    eng.close()
    return {"jobs_per_s": count / wall, "cpu_ms": 1000 * cpu / count}


LATENCY_APP = textwrap.dedent(
    """
    import json, os, time
    from engine import ProcessEngine, RetryPolicy

    def make():
        eng = ProcessEngine(os.environ["SPILLWAY_DB"],
                           retry_policy=RetryPolicy(retries=1, initial_delay=0.2, jitter=0))
        out = os.environ["LATENCY_LOG"]

        def flaky(ctx):
            if ctx.attempt == 1:
                raise ConnectionError("first attempt fails")
            with open(out, "a") as f:
                f.write(json.dumps([ctx.idempotency_key, time.time()]) + "\\n")
            return {"ok": True}

        eng.register_handler("flaky", flaky)
        return eng
    """
)


def latency(url: str, count: int, cross_process: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "attempts.jsonl"
        (Path(tmp) / "latapp.py").write_text(LATENCY_APP)
        env = dict(os.environ, SPILLWAY_DB=url, LATENCY_LOG=str(log))
        env["PYTHONPATH"] = os.pathsep.join([tmp, str(Path(__file__).parent.parent)])
        os.environ.update(SPILLWAY_DB=url, LATENCY_LOG=str(log))
        sys.path.insert(0, tmp)
        import latapp  # type: ignore[import-not-found]

        sys.path.remove(tmp)
        eng: ProcessEngine = latapp.make()
        eng.deploy(ONE)
        worker = None
        ex = None
        if cross_process:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from engine.cli.main import main; raise SystemExit(main())",
                    "--app",
                    "latapp:make",
                    "worker",
                    "--workers",
                    "2",
                    "--max-idle-wait",
                    "5",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(2.0)  # let it connect and LISTEN
        else:
            ex = eng.job_executor(workers=2, max_idle_wait=5.0)
            ex.start()
        due: dict[str, float] = {}
        for _ in range(count):
            inst = eng.start("one")
            [job] = eng.jobs(inst.id)
            due[inst.id] = job.due_at.timestamp()
            time.sleep(0.25)  # one job at a time: measure pickup, not queueing
        deadline = time.time() + 30
        while time.time() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= count:
                break
            time.sleep(0.05)
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if ex is not None:
            ex.stop()
        eng.close()
        lat = []
        for line in log.read_text().splitlines():
            key, at = json.loads(line)
            lat.append((at - due[key.split(":")[0]]) * 1000)
        return {"p50": statistics.median(lat), "p99": pct(lat, 0.99), "n": len(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--latency", type=int, default=40)
    ap.add_argument("--pg", help="PostgreSQL URL (emptied of Spillway's tables first)")
    ap.add_argument(
        "--drain-only",
        action="store_true",
        help="only the fail-once drains (1 and --workers threads), and its CPU per job",
    )
    args = ap.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if args.drain_only:
        drains(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{tmp}/happy.db"
        r = happy_path(sqlite, args.instances)
        print(
            f"happy path, 5 service tasks, SQLite: async-on-error off {r['off']:.0f}/s, "
            f"on {r['on']:.0f}/s, cost {100 * (r['off'] / r['on'] - 1):+.1f}%"
        )
        # SQLite takes one writer at a time: with a handler that does no I/O, one thread is
        # the fastest; more threads pay off when handlers wait on I/O. Both are measured.
        targets = [
            ("SQLite", f"sqlite:///{tmp}/jobs1.db", 1),
            ("SQLite", f"sqlite:///{tmp}/jobs.db", args.workers),
        ]
        if args.pg:
            targets.append(("PostgreSQL", args.pg, args.workers))
        report_fail_once(targets, args.jobs)
        lat_targets = [("SQLite", f"sqlite:///{tmp}/lat.db")]
        if args.pg:
            lat_targets.append(("PostgreSQL", args.pg))
        for name, url in lat_targets:
            for cross in (False, True):
                if url.startswith("postgresql"):
                    reset(url)
                lat = latency(url, args.latency, cross)
                where = "other process" if cross else "in-process"
                print(
                    f"pickup latency, {name}, {where}: p50 {lat['p50']:.1f} ms, "
                    f"p99 {lat['p99']:.1f} ms (n={lat['n']:.0f})"
                )


def report_fail_once(targets: list[tuple[str, str, int]], jobs: int) -> None:
    """The fail-once drain on each (name, url, threads), a line each."""
    for name, url, workers in targets:
        if url.startswith("postgresql"):
            reset(url)
        f = fail_once(url, jobs, workers)
        print(
            f"fail once, {jobs} jobs, {name}, {workers} thread(s): "
            f"{f['jobs_per_s']:.0f} jobs/s ({f['seconds']:.1f} s); "
            f"baseline start() {f['start_per_s']:.0f}/s",
            flush=True,
        )


def drains(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite:///{tmp}/jobs1.db", 1)]
        if args.pg:
            targets.append(("PostgreSQL", args.pg, args.workers))
        report_fail_once(targets, args.jobs)
        cpu_targets = [("SQLite", f"sqlite:///{tmp}/cpu.db")]
        if args.pg:
            cpu_targets.append(("PostgreSQL", args.pg))
        for name, url in cpu_targets:
            if url.startswith("postgresql"):
                reset(url)
            c = cpu_per_job(url, min(args.jobs, 3000))
            print(
                f"run_jobs() drain, {min(args.jobs, 3000)} jobs, {name}: {c['jobs_per_s']:.0f}"
                f" jobs/s, {c['cpu_ms']:.2f} ms CPU per job",
                flush=True,
            )


def reset(url: str) -> None:
    fresh_pg(url)


if __name__ == "__main__":
    import logging

    logging.getLogger("spillway").setLevel(logging.ERROR)  # the failures are the point
    threading.excepthook = lambda a: print("thread failed:", a.exc_value, file=sys.stderr)
    main()
