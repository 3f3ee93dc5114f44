"""The seed's scenario through RabbitMQ: 200 ExampleProcess instances (10,000 parallel external
tasks) on PostgreSQL, each task published by the bridge, done by a worker in another process,
and its result applied by the bridge.

    python benchmarks/bench_bridge.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/bench \
        [--amqp amqp://guest:guest@127.0.0.1:5672/%2F] [--instances 200] [--workers 1]

This process is the engine node: it runs ``RabbitMQBridge`` (outbox publisher with confirms,
result consumer) and a starter thread that starts the instances as fast as it can. ``--workers``
separate processes run the reference worker (``engine.bridge.worker``) on topic ``copy``, each
answering with the same ``copy`` variable as ``example_process_handlers.copy_file``.

Deliberate duplicates: each worker publishes every 10th answer a second time (as a redelivery
after a lost acknowledgement would); the bridge must log, ignore and count each one.

Reported: start time, wall time from the first start to the last instance completed, tasks/s,
duplicates sent / ignored, conflicts retried, and the check that every instance completed
exactly once (one completed end event in its history, 50 distinct copies, no task or outbox row
left). The seed measured 3-4 minutes for the same 10,000 tasks on Camunda + RabbitMQ +
PostgreSQL. Queues and exchanges get a fresh prefix per run and are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pika
import sqlalchemy as sa

from engine import ProcessEngine
from engine.bridge.rabbitmq import BridgeOptions, RabbitMQBridge
from engine.bridge.worker import BridgeWorker
from engine.storage import schema as t
from processes import example_process_handlers as example

ROOT = Path(__file__).resolve().parent.parent
BPMN = ROOT / "processes" / "example_process.bpmn"
TABLES = (
    "sw_deployments, sw_resources, sw_definitions, sw_instances, sw_history, "
    "sw_subscriptions, sw_jobs, sw_incidents, sw_external_tasks, sw_outbox"
)
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


# -- the worker process ----------------------------------------------------------------------


def copy_task(task: dict[str, Any]) -> dict[str, Any]:
    """``copy_file`` of the example, on a task message instead of a TaskContext."""
    source = str(task["variables"]["file"])
    return {
        "copy": {
            "from": source,
            "to": source.replace("in/", "archive/", 1),
            "key": task["task_id"],
        }
    }


class DuplicatingWorker(BridgeWorker):
    """The reference worker, plus every ``every``-th answer published a second time right
    after its batch was committed."""

    def __init__(self, every: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every = every
        self.answered = 0
        self.duplicates_sent = 0
        self._again: list[tuple[str, str, bytes]] = []

    def _result(self, task: dict[str, Any]) -> bytes:
        body = super()._result(task)
        self.answered += 1
        if self.every and self.answered % self.every == 0:
            self._again.append((task["reply_exchange"], task["reply_routing_key"], body))
        return body

    def _answer(self, channel: Any) -> None:
        super()._answer(channel)
        if self._again:
            for exchange, routing_key, body in self._again:
                channel.basic_publish(exchange, routing_key, body)
            channel.tx_commit()
            self.duplicates_sent += len(self._again)
            self._again.clear()


def worker_main(args: argparse.Namespace) -> None:
    worker = DuplicatingWorker(
        args.duplicate_every,
        copy_task,
        ["copy"],
        args.amqp,
        task_exchange=f"{args.prefix}.tasks",
        task_queue=f"{args.prefix}.tasks.{{topic}}",
        prefetch=args.worker_prefetch,
        name=f"bench-worker-{os.getpid()}",
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    worker.run()
    print(json.dumps({"answered": worker.answered, "duplicates_sent": worker.duplicates_sent}))


# -- the engine node -------------------------------------------------------------------------


def fresh_pg(url: str) -> None:
    eng = ProcessEngine(url)
    with eng.store.transaction() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLES}")
    eng.close()


def spawn_worker(args: argparse.Namespace, prefix: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--as-worker",
        "--amqp",
        args.amqp,
        "--prefix",
        prefix,
        "--duplicate-every",
        str(args.duplicate_every),
        "--worker-prefetch",
        str(args.worker_prefetch),
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)


class BridgeProcess:
    """``spillway bridge`` as its own process (the deployment this scenario models: the
    application node starts instances, a bridge node talks to the broker)."""

    def __init__(self, args: argparse.Namespace, prefix: str, publish: bool = True) -> None:
        cmd = [
            sys.executable,
            "-m",
            "engine.cli.main",
            "--db",
            args.pg,
            "bridge",
            "--url",
            args.amqp,
            "--topic",
            "copy",
            "--variable",
            "file",
            "--task-exchange",
            f"{prefix}.tasks",
            "--task-queue",
            f"{prefix}.tasks.{{topic}}",
            "--result-exchange",
            f"{prefix}.results",
            "--result-queue",
            f"{prefix}.results",
            "--batch-size",
            str(args.batch_size),
            "--prefetch",
            str(args.prefetch),
            "--consumer-threads",
            str(args.consumer_threads),
            *([] if publish else ["--no-publish"]),
        ]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.counts: dict[str, int] = {}

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        last = out.strip().splitlines()[-1]  # "bridge NAME: stopped (name n, name n, ...)"
        inner = last[last.index("(") + 1 : last.rindex(")")]
        for item in inner.split(", "):
            name, _, value = item.rpartition(" ")
            if value.isdigit():
                self.counts[name] = int(value)
        return self.counts


def queue_exists(url: str, queue: str) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if conn.is_open:
            conn.close()


def run(args: argparse.Namespace) -> None:
    prefix = f"bench.{uuid.uuid4().hex[:8]}"
    fresh_pg(args.pg)
    eng = ProcessEngine(args.pg)
    example.register(eng)
    eng.deploy(BPMN)
    # Task messages carry what the worker needs, not the whole list of 50 files.
    eng.publish_topics(["copy"], variables=["file"])
    bridge: RabbitMQBridge | BridgeProcess
    extra: list[BridgeProcess] = []
    if args.bridge == "process":
        bridge = BridgeProcess(args, prefix)
        # More bridge processes share the result queue (and the outbox would be shared too;
        # one publisher keeps the task order simple).
        extra = [BridgeProcess(args, prefix, publish=False) for _ in range(args.bridges - 1)]
        deadline = time.monotonic() + 30
        while not queue_exists(args.amqp, f"{prefix}.results"):
            if time.monotonic() > deadline or bridge.proc.poll() is not None:
                raise SystemExit("the bridge process did not come up")
            time.sleep(0.1)
        time.sleep(1.0 if extra else 0.0)  # every bridge consuming
    else:
        bridge = RabbitMQBridge(
            eng,
            args.amqp,
            ["copy"],
            task_exchange=f"{prefix}.tasks",
            task_queue=f"{prefix}.tasks.{{topic}}",
            result_exchange=f"{prefix}.results",
            result_queue=f"{prefix}.results",
            options=BridgeOptions(
                batch_size=args.batch_size,
                prefetch=args.prefetch,
                consumer_threads=args.consumer_threads,
                variables=("file",),
            ),
        )
        bridge.start()
        if not bridge.wait_ready(10):
            raise SystemExit("the bridge could not connect to RabbitMQ")
    workers = [spawn_worker(args, prefix) for _ in range(args.workers)]
    deadline = time.monotonic() + 30
    while not queue_exists(args.amqp, f"{prefix}.tasks.copy"):  # a worker declared it
        if time.monotonic() > deadline:
            raise SystemExit("the worker processes did not come up")
        time.sleep(0.1)
    time.sleep(0.5)  # every worker consuming

    tasks = args.instances * args.files
    started: list[str] = []
    t0 = time.perf_counter()
    for _ in range(args.instances):
        started.append(eng.start("ExampleProcess", {"files": example.files(args.files)}).id)
    t_started = time.perf_counter() - t0
    count = (
        sa.select(sa.func.count())
        .select_from(t.instances)
        .where(t.instances.c.state == "completed")
    )
    deadline = time.monotonic() + args.timeout
    while True:
        with eng.store.transaction(write=False) as conn:
            done = conn.execute(count).scalar_one()
        if done >= args.instances:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {done}/{args.instances} completed")
        time.sleep(0.05)
    wall = time.perf_counter() - t0

    # Let the deliberate duplicates (sent after their originals) arrive, then stop.
    worker_stats = []
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    for proc in workers:
        out, _ = proc.communicate(timeout=30)
        worker_stats.append(json.loads(out.strip().splitlines()[-1]))
    sent_again = sum(w["duplicates_sent"] for w in worker_stats)
    if isinstance(bridge, BridgeProcess):
        time.sleep(2.0)  # the last duplicates reach the bridge
        stats = engine_stats = bridge.stop()
        for other in extra:
            for name, value in other.stop().items():
                stats[name] = stats.get(name, 0) + value
    else:
        wait_until = time.monotonic() + 10
        while bridge.stats["duplicates"] < sent_again and time.monotonic() < wait_until:
            time.sleep(0.05)
        bridge.stop()
        stats = bridge.stats.snapshot()
        engine_stats = eng.stats.snapshot()
    stats = {name: stats.get(name, 0) for name in ("published", "republished", *stats)}

    print(f"  started {args.instances} instances ({tasks} tasks) in {t_started:.2f} s")
    print(f"  wall time, first start to last instance completed: {wall:.2f} s")
    print(f"  throughput: {tasks / wall:,.0f} tasks/s ({args.instances / wall:.1f} instances/s)")
    print(
        f"  messages: {stats['published']} tasks published (+{stats['republished']} again),"
        f" {sum(w['answered'] for w in worker_stats)} answered by {args.workers} worker process(es)"
    )
    print(
        f"  duplicates: {sent_again} answers sent twice, {stats['duplicates']} seen and ignored"
        f" by the bridge (engine counted {engine_stats.get('external_duplicates', 0)})"
    )
    print(
        f"  conflicts retried inside the engine: {engine_stats.get('conflicts_retried', 0)};"
        f" instance writes applying results: {engine_stats.get('external_batches', 0)}"
        f" ({engine_stats.get('external_batches', 0) / args.instances:.1f} per instance)"
    )
    print(f"  bridge: {', '.join(f'{k} {v}' for k, v in stats.items() if v)}")
    check(eng, started, args.files)
    assert stats["completed"] == tasks, (stats["completed"], tasks)
    assert stats["duplicates"] == sent_again, (stats["duplicates"], sent_again)
    cleanup(args.amqp, prefix)
    eng.close()


def check(eng: ProcessEngine, ids: list[str], files: int) -> None:
    """Every instance completed exactly once, with each file copied once; nothing left over."""
    h = t.history
    ends = (
        sa.select(h.c.instance_id, sa.func.count())
        .where(h.c.activity_id == "EndEvent_Copied", h.c.outcome == "completed")
        .group_by(h.c.instance_id)
    )
    with eng.store.transaction(write=False) as conn:
        end_counts = dict(conn.execute(ends).all())
        leftovers = (
            conn.execute(sa.select(sa.func.count()).select_from(t.external_tasks)).scalar_one()
            + conn.execute(sa.select(sa.func.count()).select_from(t.outbox)).scalar_one()
        )
    bad = [i for i in ids if end_counts.get(i) != 1]
    wrong = []
    for inst in eng.instances(process_key="ExampleProcess"):
        copies = inst.variables.get("copies", [])
        if inst.state != "completed" or sorted(c["from"] for c in copies) != example.files(files):
            wrong.append(inst.id)
    ok = not bad and not wrong and len(end_counts) == len(ids) and leftovers == 0
    print(
        f"  check: {len(ids) - len(bad)}/{len(ids)} instances with exactly one completed end"
        f" event, {len(ids) - len(wrong)}/{len(ids)} with {files} distinct copies,"
        f" {leftovers} task/outbox rows left -> {'OK' if ok else 'FAILED'}"
    )
    if not ok:
        raise SystemExit(f"check failed: ends {bad[:5]}, copies {wrong[:5]}")


def cleanup(url: str, prefix: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for queue in (f"{prefix}.tasks.copy", f"{prefix}.results"):
        ch.queue_delete(queue)
    for exchange in (f"{prefix}.tasks", f"{prefix}.results"):
        ch.exchange_delete(exchange)
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pg", default=os.environ.get("SPILLWAY_BENCH_PG"))
    ap.add_argument("--amqp", default=os.environ.get("SPILLWAY_AMQP_URL", DEFAULT_AMQP))
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--files", type=int, default=50, help="parallel tasks per instance")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--batch-size", type=int, default=100, help="bridge: outbox rows per batch")
    ap.add_argument("--prefetch", type=int, default=500, help="bridge: results held at once")
    ap.add_argument("--consumer-threads", type=int, default=1)
    ap.add_argument(
        "--bridges", type=int, default=1, help="bridge processes (with --bridge process)"
    )
    ap.add_argument(
        "--bridge",
        choices=["process", "thread"],
        default="process",
        help="the bridge as a `spillway bridge` process (default) or in this process",
    )
    ap.add_argument("--worker-prefetch", type=int, default=200)
    ap.add_argument("--duplicate-every", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    args = ap.parse_args()
    # Duplicates are logged at WARNING by design; keep the benchmark's output readable.
    logging.basicConfig(level=logging.ERROR)
    if args.as_worker:
        worker_main(args)
        return
    if not args.pg:
        raise SystemExit("--pg URL (or SPILLWAY_BENCH_PG) is required: the scenario is PostgreSQL")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"bridge ({args.bridges} {args.bridge}): batch_size={args.batch_size}"
        f" prefetch={args.prefetch}"
        f" consumer_threads={args.consumer_threads}; {args.workers} worker process(es),"
        f" prefetch {args.worker_prefetch}"
    )
    print("\nPostgreSQL + RabbitMQ")
    run(args)


if __name__ == "__main__":
    main()
