"""``spillway bridge``: the RabbitMQ bridge as a process (options here, so ``engine.cli.main`` stays
thin and pika is imported only when the command runs)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from engine.core.errors import EngineError

if TYPE_CHECKING:
    from engine.engine import ProcessEngine

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def add_arguments(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument(
        "--url", default=env("SPILLWAY_AMQP_URL", DEFAULT_URL), help="env SPILLWAY_AMQP_URL"
    )
    p.add_argument(
        "--topic",
        action="append",
        default=[t for t in env("SPILLWAY_BRIDGE_TOPICS", "").split(",") if t],
        help="an external-task topic to publish (repeat; env SPILLWAY_BRIDGE_TOPICS=a,b)",
    )
    p.add_argument("--worker-id", default=env("SPILLWAY_BRIDGE_WORKER", "bridge:rabbitmq"))
    p.add_argument("--task-exchange", default="spillway.tasks")
    p.add_argument("--task-queue", default="spillway.tasks.{topic}")
    p.add_argument("--result-exchange", default="spillway.results")
    p.add_argument("--result-queue", default="spillway.results")
    p.add_argument("--dead-letter-exchange", default=None)
    p.add_argument(
        "--publish-lock",
        type=float,
        default=300.0,
        help="seconds without an answer before a task is published again",
    )
    p.add_argument(
        "--variable",
        action="append",
        help="a variable task messages carry (repeat; default all). Applies to tasks this "
        "process publishes again; tasks get their first message where they are created, "
        "so configure publish_topics(variables=...) on those engines alike",
    )
    p.add_argument(
        "--batch-size", type=int, default=100, help="outbox rows (one per commit) per batch"
    )
    p.add_argument("--prefetch", type=int, default=200)
    p.add_argument("--consumer-threads", type=int, default=1)
    p.add_argument("--no-publish", action="store_true", help="only apply results")
    p.add_argument("--no-consume", action="store_true", help="only publish tasks")
    p.add_argument("--stop-timeout", type=float, default=10.0)


def run(eng: ProcessEngine, args: argparse.Namespace) -> None:
    from engine.bridge.rabbitmq import BridgeOptions, RabbitMQBridge

    if not args.topic:
        raise EngineError("spillway bridge needs at least one --topic")
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: Any) -> None:
        stop.set()  # only a flag: the main thread stops the bridge

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    bridge = RabbitMQBridge(
        eng,
        args.url,
        args.topic,
        worker_id=args.worker_id,
        task_exchange=args.task_exchange,
        task_queue=args.task_queue,
        result_exchange=args.result_exchange,
        result_queue=args.result_queue,
        dead_letter_exchange=args.dead_letter_exchange,
        options=BridgeOptions(
            batch_size=args.batch_size,
            prefetch=args.prefetch,
            consumer_threads=args.consumer_threads,
            publish_lock=args.publish_lock,
            variables=tuple(args.variable) if args.variable else None,
        ),
        publish=not args.no_publish,
        consume=not args.no_consume,
    )
    bridge.start()
    print(f"bridge {bridge.name}: topics {', '.join(args.topic)}; Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        bridge.stop(timeout=args.stop_timeout)
    counts = {**bridge.stats.snapshot(), **eng.stats.snapshot()}
    stats = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
    print(f"bridge {bridge.name}: stopped ({stats or 'nothing done'})", flush=True)
