"""AMQP plumbing shared by the bridge and the reference worker: options, topology, backoff.

Kept apart from the engine so that ``engine.bridge.worker`` (an outside worker) needs nothing
but pika and these few definitions.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pika

from engine.bridge import messages
from engine.core.errors import EngineError

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_TASK_EXCHANGE = "spillway.tasks"
DEFAULT_TASK_QUEUE = "spillway.tasks.{topic}"
DEFAULT_RESULT_EXCHANGE = "spillway.results"
DEFAULT_RESULT_QUEUE = "spillway.results"
RECONNECT_INITIAL = 0.5  # seconds before the first reconnect attempt
RECONNECT_MAX = 30.0  # seconds; the cap of the doubling
HEARTBEAT = 30  # seconds; a dead peer is noticed within two of these
BLOCKED_TIMEOUT = 60.0  # seconds a broker may block publishing (resource alarm) before we reconnect


@dataclass(frozen=True)
class Topology:
    """Names of the exchanges and queues, all declared durable; both sides declare them
    (idempotently), so whichever starts first finds them in place."""

    topics: tuple[str, ...] = ()
    task_exchange: str = DEFAULT_TASK_EXCHANGE
    #: ``{topic}`` is replaced by each topic; one durable queue per topic, bound by topic.
    task_queue: str = DEFAULT_TASK_QUEUE
    result_exchange: str = DEFAULT_RESULT_EXCHANGE
    result_queue: str = DEFAULT_RESULT_QUEUE
    #: Results that cannot be applied (invalid, unknown task) go here when set; else dropped.
    dead_letter_exchange: str | None = None

    def __post_init__(self) -> None:
        for name in ("task_exchange", "task_queue", "result_exchange", "result_queue"):
            if not getattr(self, name):
                raise EngineError(f"bridge topology: {name} must not be empty")
        for topic in self.topics:
            if not topic or not isinstance(topic, str):
                raise EngineError(f"bridge topology: invalid topic {topic!r}")

    @property
    def result_routing_key(self) -> str:
        return self.result_queue

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.result_queue}.dead"

    def task_body(self, payload: Mapping[str, Any]) -> bytes:
        """The body of a task message: the task, and where its result goes."""
        return messages.task_body(payload, self.result_exchange, self.result_routing_key)

    def task_properties(self, task_id: str) -> pika.BasicProperties:
        return pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=task_id,
            correlation_id=task_id,
            reply_to=self.result_routing_key,
            app_id="spillway",
            type="spillway.external-task",
        )

    def queue_for(self, topic: str) -> str:
        return self.task_queue.format(topic=topic)

    def declare_tasks(self, channel: Any, topics: Sequence[str] | None = None) -> None:
        """The task exchange and one queue per topic (a blocking channel)."""
        channel.exchange_declare(self.task_exchange, "direct", durable=True)
        for topic in self.topics if topics is None else topics:
            queue = self.queue_for(topic)
            channel.queue_declare(queue, durable=True)
            channel.queue_bind(queue, self.task_exchange, routing_key=topic)

    def declare_results(self, channel: Any) -> None:
        """The result exchange and queue, and the dead-letter pair when configured."""
        arguments: dict[str, Any] = {}
        if self.dead_letter_exchange:
            channel.exchange_declare(self.dead_letter_exchange, "fanout", durable=True)
            channel.queue_declare(self.dead_letter_queue, durable=True)
            channel.queue_bind(self.dead_letter_queue, self.dead_letter_exchange)
            arguments["x-dead-letter-exchange"] = self.dead_letter_exchange
        channel.exchange_declare(self.result_exchange, "direct", durable=True)
        channel.queue_declare(self.result_queue, durable=True, arguments=arguments or None)
        channel.queue_bind(
            self.result_queue, self.result_exchange, routing_key=self.result_routing_key
        )


def declare_topology(url: str, name: str, topology: Topology) -> None:
    """Declare the exchanges and queues (idempotent) on a short-lived connection."""
    conn = pika.BlockingConnection(connection_parameters(url, f"{name}:declare"))
    try:
        channel = conn.channel()
        topology.declare_tasks(channel)
        topology.declare_results(channel)
    finally:
        with contextlib.suppress(*CONNECTION_ERRORS):
            conn.close()


def connection_parameters(url: str, name: str) -> pika.URLParameters:
    """Parameters for one of our connections; ``name`` shows in the broker's connection list."""
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": name, "product": "spillway"}
    params.heartbeat = HEARTBEAT
    params.blocked_connection_timeout = BLOCKED_TIMEOUT
    params.connection_attempts = 1
    return params


class Backoff:
    """Capped exponential backoff with jitter, for reconnecting."""

    def __init__(self, initial: float = RECONNECT_INITIAL, maximum: float = RECONNECT_MAX) -> None:
        if initial <= 0 or maximum < initial:
            raise EngineError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next(self) -> float:
        """The next delay: initial * 2**failures, capped, drawn from its upper half."""
        delay = min(self.maximum, self.initial * (2 ** min(self.failures, 30)))
        self.failures += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0


def consume_with_reconnect(
    url: str,
    name: str,
    *,
    stopping: threading.Event,
    ready: threading.Event,
    backoff: Backoff,
    setup: Callable[[Any], None],
    pending: Callable[[], bool],
    drain: Callable[[Any], None],
    closed: Callable[[], None],
    lost: Callable[[BaseException], None],
    failed: Callable[[Exception], None] | None = None,
) -> None:
    """Consume on a blocking connection named ``name`` until ``stopping`` is set, reconnecting
    with ``backoff`` whenever the connection goes away.

    Per connection: ``setup(channel)`` declares and subscribes; then while messages are
    ``pending()`` (buffered by the consumer's callback) ``drain(channel)`` handles them.
    ``ready`` is set while connected. When the connection ends, ``closed()`` drops what was
    buffered (the broker redelivers whatever was not acknowledged) and ``lost(exc)`` says why;
    any other error goes to ``failed(exc)`` (inside its ``except``, so it may log the trace),
    or is raised when there is no ``failed``.
    """
    while not stopping.is_set():
        conn = None
        try:
            conn = pika.BlockingConnection(connection_parameters(url, name))
            channel = conn.channel()
            setup(channel)
            ready.set()
            backoff.reset()
            while not stopping.is_set():
                conn.process_data_events(time_limit=0 if pending() else 0.25)
                if pending():
                    drain(channel)
        except CONNECTION_ERRORS as exc:
            if not stopping.is_set():
                lost(exc)
        except Exception as exc:
            if failed is None:
                raise
            failed(exc)
        finally:
            ready.clear()
            closed()
            if conn is not None and conn.is_open:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.close()
        if not stopping.is_set():
            stopping.wait(backoff.next())


#: What a lost or refused broker connection raises in pika (and the socket under it).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPError,
    OSError,
)
