"""A reference outside worker for the RabbitMQ bridge: task messages in, result messages out.

    python -m engine.bridge.worker --topic copy --handler mymodule:copy_item

The handler receives the task message as a dict (``task_id``, ``topic``, ``variables``,
``business_key``... see ``engine.bridge.messages``) and returns the variables to complete the
task with (or None). Raising ``BpmnError(code, message, variables)`` answers a BPMN error; any
other exception answers a failure with ``--retries`` retries ``--retry-timeout`` seconds apart.

Each batch of answers is published and its task messages acknowledged in one AMQP transaction:
a crash never loses an answer nor acknowledges an unanswered task. It may answer a task twice
(a redelivery after a crash, or the bridge publishing again after its lock expired); the
bridge ignores the second answer, so handlers should be idempotent, keyed on ``task_id``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pika

from engine.bridge import messages as bridge_messages
from engine.bridge.amqp import (
    DEFAULT_TASK_EXCHANGE,
    DEFAULT_TASK_QUEUE,
    DEFAULT_URL,
    Backoff,
    Topology,
    consume_with_reconnect,
)
from engine.core.errors import BpmnError, EngineError

log = logging.getLogger("spillway.bridge_worker")

TaskHandler = Callable[[dict[str, Any]], Mapping[str, Any] | None]
DEFAULT_PREFETCH = 100  # task messages held (and answered in one transaction) at most


class BridgeWorker:
    """Consumes the task queues of ``topics`` and answers each message through its reply address."""

    def __init__(
        self,
        handler: TaskHandler,
        topics: Sequence[str],
        url: str = DEFAULT_URL,
        *,
        task_exchange: str = DEFAULT_TASK_EXCHANGE,
        task_queue: str = DEFAULT_TASK_QUEUE,
        prefetch: int = DEFAULT_PREFETCH,
        retries: int = 0,
        retry_timeout: float = 0.0,
        name: str = "worker",
    ) -> None:
        if isinstance(topics, str) or not topics:
            raise EngineError(f"BridgeWorker needs a list of topics, got {topics!r}")
        self.handler = handler
        self.url = url
        self.topology = Topology(
            topics=tuple(topics), task_exchange=task_exchange, task_queue=task_queue
        )
        self.prefetch = prefetch
        self.retries = retries
        self.retry_timeout = retry_timeout
        self.name = name
        self.handled = 0
        self.failures = 0
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._buffer: list[tuple[int, Any, bytes]] = []

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Work until ``stop()``, reconnecting with backoff when the broker goes away."""
        consume_with_reconnect(
            self.url,
            self.name,
            stopping=self._stopping,
            ready=self.ready,
            backoff=Backoff(),
            setup=self._subscribe,
            pending=lambda: bool(self._buffer),
            drain=self._answer,
            closed=lambda: self._buffer.clear(),
            lost=lambda exc: log.warning("%s: connection lost (%s); reconnecting", self.name, exc),
        )

    def _subscribe(self, channel: Any) -> None:
        self.topology.declare_tasks(channel)
        channel.basic_qos(prefetch_count=self.prefetch)
        channel.tx_select()
        for topic in self.topology.topics:
            channel.basic_consume(self.topology.queue_for(topic), self._on_message)

    def _on_message(self, _channel: Any, method: Any, props: Any, body: bytes) -> None:
        self._buffer.append((method.delivery_tag, props, body))

    def _answer(self, channel: Any) -> None:
        batch, self._buffer = self._buffer, []
        for tag, props, body in batch:
            try:
                task = json.loads(body)
                task_id = task["task_id"]
                exchange = task.get("reply_exchange", "")
                routing_key = task.get("reply_routing_key") or props.reply_to
                if not isinstance(task_id, str) or not routing_key:
                    raise ValueError("no task_id or reply address")
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s: unusable task message rejected: %s", self.name, exc)
                channel.basic_reject(tag, requeue=False)
                continue
            channel.basic_publish(
                exchange,
                routing_key,
                self._result(task),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    correlation_id=task_id,
                ),
            )
        channel.basic_ack(batch[-1][0], multiple=True)
        channel.tx_commit()
        self.handled += len(batch)

    def _result(self, task: dict[str, Any]) -> bytes:
        task_id = task["task_id"]
        try:
            variables = self.handler(task)
        except BpmnError as err:
            return bridge_messages.bpmn_error(task_id, err.code, err.message, err.variables)
        except Exception as exc:  # noqa: BLE001 - any handler error is answered as a failure
            self.failures += 1
            return bridge_messages.failed(
                task_id,
                f"{type(exc).__name__}: {exc}",
                traceback.format_exc(),
                retries=self.retries,
                retry_timeout=self.retry_timeout,
            )
        return bridge_messages.completed(task_id, variables)


def load_handler(spec: str) -> TaskHandler:
    """``module:function``, imported from the working directory too."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise EngineError(f"--handler expects module:function, got {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EngineError(f"--handler {spec}: {exc}") from exc
    if not callable(target):
        raise EngineError(f"--handler {spec}: not callable")
    handler: TaskHandler = target
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.bridge.worker", description="answer Spillway task messages"
    )
    parser.add_argument("--url", default=os.environ.get("SPILLWAY_AMQP_URL", DEFAULT_URL))
    parser.add_argument("--topic", action="append", required=True, help="repeat for several")
    parser.add_argument("--handler", required=True, help="module:function")
    parser.add_argument("--task-exchange", default=DEFAULT_TASK_EXCHANGE)
    parser.add_argument("--task-queue", default=DEFAULT_TASK_QUEUE)
    parser.add_argument("--prefetch", type=int, default=DEFAULT_PREFETCH)
    parser.add_argument("--retries", type=int, default=0, help="retries a failure asks for")
    parser.add_argument("--retry-timeout", type=float, default=0.0)
    parser.add_argument("--name", default=f"worker-{os.getpid()}")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        worker = BridgeWorker(
            load_handler(args.handler),
            args.topic,
            args.url,
            task_exchange=args.task_exchange,
            task_queue=args.task_queue,
            prefetch=args.prefetch,
            retries=args.retries,
            retry_timeout=args.retry_timeout,
            name=args.name,
        )
    except EngineError as exc:
        print(f"bridge_worker: error: {exc}", file=sys.stderr)
        return 2

    def _on_signal(_signum: int, _frame: Any) -> None:
        worker.stop()  # only a flag: the loop finishes its batch and closes

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"{args.name}: answering {', '.join(args.topic)}", flush=True)
    worker.run()
    print(f"{args.name}: stopped after {worker.handled} tasks", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
