"""The seed's scenario over HTTP: ``spillway serve`` on PostgreSQL, 200 ExampleProcess instances
started with ``POST /engine-rest/process-definition/key/ExampleProcess/start`` (10,000 external
tasks), drained by worker processes built on camunda-external-task-client-python3.

    python benchmarks/bench_http.py [--instances 200] [--workers 4] [--threads 10] [--max-tasks 5]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/spillway_bench_http]
        [--baseline-root DIR]

``--baseline-root DIR`` runs the scenario first against a server run from another source tree
(``mkdir DIR && git archive main | tar -x -C DIR``), on a database of its own (the ``--pg``
name + ``_base``), so a change is measured beside its baseline in the same run.

Phases, all in one run against one server process (``spillway serve --workers 1``):

1. scenario: the workers run (``--workers`` processes, each running ``--threads``
   ``ExternalTaskWorker`` s of the client library side by side, ``maxTasks`` ``--max-tasks``,
   long polling 10 s; the client completes its tasks one request at a time, so concurrency
   comes from threads and processes, and the server combines concurrent completions of one
   instance into one write) while the benchmark starts
   the instances over HTTP one after another as fast as it can; wall time from the first start
   to the last instance completed, tasks/s, and the check that every instance completed once
   with its 50 copies;
2. start latency: with the workers stopped, ``--starts`` starts over HTTP (keep-alive client),
   beside the same number of in-process ``ProcessEngine.start()`` calls on the same database,
   p50 / p99 each;
3. pickup latency with long polling: a client waits in ``fetchAndLock``
   (``asyncResponseTimeout`` 30 s); an instance of a one-external-task process is started, and
   the time from the start's commit to the poll's answer is measured (``--pickups`` times),
   once with the start over HTTP (the server's own commit wakes the poll) and once in-process
   from this benchmark (another node: PostgreSQL NOTIFY wakes it).

The seed measured 3-4 minutes for the 10,000 tasks on Camunda + RabbitMQ + PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from engine import ProcessEngine  # noqa: E402
from processes import example_process_handlers as example  # noqa: E402

BPMN = ROOT / "processes" / "example_process.bpmn"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/spillway_bench_http"
TABLES = (
    "sw_deployments, sw_resources, sw_definitions, sw_instances, sw_history, "
    "sw_subscriptions, sw_jobs, sw_incidents, sw_external_tasks, sw_outbox"
)
PING = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">'
    '<bpmn:process id="Ping" isExecutable="true"><bpmn:startEvent id="s"/>'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="T"/>'
    '<bpmn:serviceTask id="T" camunda:type="external" camunda:topic="ping"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="T" targetRef="e"/><bpmn:endEvent id="e"/>'
    "</bpmn:process></bpmn:definitions>"
)


def worker_main(base: str, worker_id: str, max_tasks: int, threads: int) -> None:
    """One worker process, as a user of the Python client writes it: ``threads`` workers of the
    client (each fetches and completes sequentially) side by side."""
    from camunda.external_task.external_task import ExternalTask
    from camunda.external_task.external_task_worker import ExternalTaskWorker

    def copy(task: ExternalTask) -> object:
        source = task.get_variable("file")
        target = source.replace("in/", "archive/", 1)
        return task.complete({"copy": {"from": source, "to": target, "key": task.get_task_id()}})

    config = {
        "maxTasks": max_tasks,
        "lockDuration": 120_000,
        "asyncResponseTimeout": 10_000,
        "sleepSeconds": 1,
    }
    workers = [
        threading.Thread(
            target=ExternalTaskWorker(f"{worker_id}-{n}", base, config).subscribe,
            args=("copy", copy),
            daemon=True,
        )
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def fresh_pg(url: str, *, empty: bool = False) -> None:
    """The benchmark's database with empty tables; ``empty``: recreated without any schema
    (a baseline server from another source tree creates its own)."""
    admin = sa.create_engine(
        sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    name = sa.make_url(url).database
    with admin.connect() as conn:
        if empty:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname=:n"), {"n": name}
        ).first():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    if empty:
        return
    eng = ProcessEngine(url)
    with eng.store.transaction() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLES}")
    eng.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5) * 1000:.2f} ms, p99 {pct(values, 0.99) * 1000:.2f} ms"


def start_server(url: str, port: int, log: Path, root: Path = ROOT) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "engine.cli.main",
        "--db",
        url,
        "serve",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/engine-rest"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/version").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"spillway serve did not start; see {log}")
        time.sleep(0.1)


def scenario(
    client: httpx.Client, eng: ProcessEngine, args: argparse.Namespace, base: str, label: str
) -> None:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                base,
                f"bench-{n}",
                str(args.max_tasks),
                str(args.threads),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(args.workers)
    ]
    time.sleep(2.0)  # the worker processes import the client and are polling
    files = example.files(args.files)
    body = {"variables": {"files": {"value": files}}}  # untyped, as the Python client sends
    ids: list[str] = []
    latencies: list[float] = []
    began = time.monotonic()
    for n in range(args.instances):
        t0 = time.perf_counter()
        response = client.post(
            "/process-definition/key/ExampleProcess/start", json={**body, "businessKey": f"b{n}"}
        )
        latencies.append(time.perf_counter() - t0)
        response.raise_for_status()
        ids.append(response.json()["id"])
    started = time.monotonic() - began
    while True:
        count = client.get(
            "/process-instance/count", params={"processDefinitionKey": "ExampleProcess"}
        )
        if count.json()["count"] == 0:
            break
        if time.monotonic() - began > 600:
            raise SystemExit("the scenario did not finish in 10 minutes")
        time.sleep(0.05)
    wall = time.monotonic() - began
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait(10)
    check(eng, ids, args.files)
    tasks = args.instances * args.files
    print(
        f"scenario ({label}): {args.instances} instances x {args.files} tasks = "
        f"{tasks} external tasks,"
    )
    print(
        f"  {args.workers} worker processes x {args.threads} ExternalTaskWorker threads "
        f"(camunda-external-task-client-python3, maxTasks {args.max_tasks})"
    )
    print(f"  starting over HTTP: {started:.2f} s ({ms(latencies)} while workers run)")
    print(
        f"  wall time, first start to last instance completed: {wall:.2f} s "
        f"({tasks / wall:,.0f} tasks/s); every instance completed once with its copies"
    )


def check(eng: ProcessEngine, ids: list[str], files: int) -> None:
    for instance_id in ids:
        inst = eng.get_instance(instance_id)
        ends = [h for h in eng.history(instance_id) if h.activity_id == "EndEvent_Copied"]
        copies = inst.variables.get("copies") or []
        if inst.state != "completed" or len(ends) != 1 or len({c["key"] for c in copies}) != files:
            raise SystemExit(f"instance {instance_id} did not complete exactly once")


def start_latency(client: httpx.Client, eng: ProcessEngine, count: int, files: int) -> None:
    body = {"variables": {"files": {"value": example.files(files)}}}
    over_http: list[float] = []
    in_process: list[float] = []
    for _ in range(10):  # warm-up
        client.post("/process-definition/key/ExampleProcess/start", json=body).raise_for_status()
        eng.start("ExampleProcess", {"files": example.files(files)})
    for _ in range(count):
        t0 = time.perf_counter()
        client.post("/process-definition/key/ExampleProcess/start", json=body).raise_for_status()
        over_http.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        eng.start("ExampleProcess", {"files": example.files(files)})
        in_process.append(time.perf_counter() - t0)
    print(f"start of an ExampleProcess ({files} external tasks), {count} each, workers stopped:")
    print(f"  in-process ProcessEngine.start() (baseline): {ms(in_process)}")
    print(f"  POST .../key/ExampleProcess/start over HTTP: {ms(over_http)}")


def pickup(client: httpx.Client, eng: ProcessEngine, base: str, count: int) -> None:
    results: dict[str, list[float]] = {"http": [], "node": []}
    for how in ("http", "node"):
        for _ in range(count):
            got: list[float] = []
            body = {
                "workerId": "pickup",
                "maxTasks": 1,
                "asyncResponseTimeout": 30_000,
                "topics": [{"topicName": "ping", "lockDuration": 10_000}],
            }

            def poll(body: dict[str, object] = body, got: list[float] = got) -> None:
                with httpx.Client(base_url=base, timeout=60) as c:
                    tasks = c.post("/external-task/fetchAndLock", json=body).json()
                    got.append(time.perf_counter())
                    for task in tasks:
                        c.post(f"/external-task/{task['id']}/complete", json={"workerId": "pickup"})

            thread = threading.Thread(target=poll)
            thread.start()
            time.sleep(0.3)  # the poll waits
            if how == "http":
                client.post("/process-definition/key/Ping/start", json={}).raise_for_status()
            else:
                eng.start("Ping")
            committed = time.perf_counter()
            thread.join(40)
            results[how].append(got[0] - committed)
    print(f"fetchAndLock pickup with long polling ({count} each, commit to answer):")
    print(f"  start over HTTP (the server's own commit wakes the poll): {ms(results['http'])}")
    print(f"  start in another process (PostgreSQL NOTIFY wakes it): {ms(results['node'])}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--files", type=int, default=50)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=10, help="client workers per process")
    ap.add_argument("--max-tasks", type=int, default=5)
    ap.add_argument("--starts", type=int, default=100)
    ap.add_argument("--pickups", type=int, default=20)
    ap.add_argument("--pg", default=os.environ.get("SPILLWAY_BENCH_PG", DEFAULT_PG))
    ap.add_argument(
        "--baseline-root",
        type=Path,
        help="also run the scenario first against a server run from this source tree (e.g. "
        "`git archive main | tar -x -C DIR`), the baseline of the same run",
    )
    args = ap.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    runs = [("this checkout", ROOT)]
    if args.baseline_root is not None:
        runs.insert(0, (f"baseline: {args.baseline_root}", args.baseline_root.resolve()))
    for n, (label, root) in enumerate(runs):
        last = n == len(runs) - 1
        run(args, label, root, latencies=last)


def run(args: argparse.Namespace, label: str, root: Path, *, latencies: bool) -> None:
    baseline = root != ROOT
    # A baseline tree gets a database of its own, whose schema its server creates (it may
    # lack this checkout's newest migrations; the engine below then adds them, all nullable).
    pg = sa.make_url(args.pg)
    url = pg.set(database=f"{pg.database}_base").render_as_string(hide_password=False)
    url = url if baseline else args.pg
    fresh_pg(url, empty=baseline)
    port = free_port()
    log = Path(tempfile.gettempdir()) / "bench_http_serve.log"
    server = start_server(url, port, log, root)
    base = f"http://127.0.0.1:{port}/engine-rest"
    eng = ProcessEngine(url)
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            files = {
                "a": ("example_process.bpmn", BPMN.read_bytes(), "text/xml"),
                "b": ("ping.bpmn", PING.encode(), "text/xml"),
            }
            client.post("/deployment/create", files=files).raise_for_status()
            scenario(client, eng, args, base, label)
            if latencies:
                start_latency(client, eng, args.starts, args.files)
                pickup(client, eng, base, args.pickups)
    finally:
        eng.close()
        server.send_signal(signal.SIGINT)
        server.wait(30)


if __name__ == "__main__":
    main()
