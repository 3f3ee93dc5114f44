"""``RabbitMQBridge``: external tasks out to RabbitMQ as messages, results back in by task id.

Outbound, through the transactional outbox (``storage.outbox``): an external task of a bridged
topic is created with an outbox row in the same transaction and locked for the bridge; the
publisher (``engine.bridge.publish``) sends it after the commit with publisher confirms and
deletes the row only once the broker confirmed it. At least once: a crash in between sends it
again, and so does a task whose bridge lock expires without an answer.

Inbound: a consumer reads result messages (``engine.bridge.messages``) from the result queue and
applies each through ``engine.external_tasks`` with the bridge's worker id, acknowledging a
message only after the engine committed. A duplicate (the task is already completed) is logged
and acknowledged; a result for an unknown task, or an invalid message, is logged with the reason
and rejected without requeue (to the dead-letter exchange when one is configured). A database
outage requeues the message and pauses consumption with backoff.

Both connections reconnect with capped exponential backoff; nothing is lost meanwhile: rows the
broker did not confirm stay in the outbox, unacknowledged results are redelivered by the broker.

``bridge.stats`` counts: ``published`` (task messages confirmed, first time), ``republished``
(sent again after a lock expired or a retry fell due), ``completed``, ``failed``,
``bpmn_errors``, ``duplicates`` (results for tasks already completed: ignored), ``stale``
(results from a lock another worker holds now: ignored), ``unknown`` and ``invalid`` (rejected),
``rejected`` (refused by the engine, e.g. bad variables), ``requeued`` (the database was
unavailable), ``reconnects``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError

from engine.bridge import messages as bridge_messages
from engine.bridge.amqp import (
    DEFAULT_RESULT_EXCHANGE,
    DEFAULT_RESULT_QUEUE,
    DEFAULT_TASK_EXCHANGE,
    DEFAULT_TASK_QUEUE,
    DEFAULT_URL,
    Backoff,
    Topology,
    consume_with_reconnect,
    declare_topology,
)
from engine.bridge.messages import InvalidMessage, Result
from engine.bridge.options import BridgeOptions
from engine.bridge.publish import Publisher
from engine.core.errors import (
    ConcurrencyConflict,
    EngineError,
    LockLost,
    NotFound,
    StoreError,
)
from engine.core.stats import Counters
from engine.storage.notify import NotifyListener
from engine.storage.outbox import DEFAULT_BRIDGE_WORKER, Outbox

if TYPE_CHECKING:
    from engine.engine import ProcessEngine

log = logging.getLogger("spillway.bridge")

#: Outcomes of one result message, and what the consumer tells the broker about it.
ACKED = frozenset({"completed", "failed", "bpmn_error", "duplicate", "stale"})
REJECTED = frozenset({"unknown", "invalid", "rejected"})
RETRY = "retry"  # the database was unavailable: requeued, consumption pauses
#: Errors that say "try again later" rather than "this message is wrong".
TRANSIENT = (StoreError, ConcurrencyConflict, OperationalError)


class RabbitMQBridge:
    """Publishes the external tasks of ``topics`` to RabbitMQ and applies the results.

    Constructing it configures ``engine.publish_topics`` for this process; every other engine
    node that creates tasks of these topics must call ``publish_topics`` with the same
    ``worker_id`` and ``publish_lock``. Several bridges may run against one database and
    broker (the same ``worker_id``): they share the outbox (PostgreSQL) and the result queue.
    """

    def __init__(
        self,
        engine: ProcessEngine,
        url: str = DEFAULT_URL,
        topics: Sequence[str] = (),
        *,
        worker_id: str = DEFAULT_BRIDGE_WORKER,
        task_exchange: str = DEFAULT_TASK_EXCHANGE,
        task_queue: str = DEFAULT_TASK_QUEUE,
        result_exchange: str = DEFAULT_RESULT_EXCHANGE,
        result_queue: str = DEFAULT_RESULT_QUEUE,
        dead_letter_exchange: str | None = None,
        options: BridgeOptions | None = None,
        publish: bool = True,
        consume: bool = True,
        name: str | None = None,
    ) -> None:
        if isinstance(topics, str) or not topics:
            raise EngineError(f"RabbitMQBridge needs a list of topics, got {topics!r}")
        self.engine = engine
        self.url = url
        self.worker_id = worker_id
        self.name = name or f"{worker_id}-{uuid.uuid4().hex[:6]}"
        self.options = options or BridgeOptions()
        self.topology = Topology(
            topics=tuple(dict.fromkeys(topics)),
            task_exchange=task_exchange,
            task_queue=task_queue,
            result_exchange=result_exchange,
            result_queue=result_queue,
            dead_letter_exchange=dead_letter_exchange,
        )
        #: What the bridge did (see the module docstring for the names).
        self.stats = Counters()
        engine.publish_topics(
            list(self.topology.topics),
            worker_id=worker_id,
            lock_duration=self.options.publish_lock,
            variables=self.options.variables,
        )
        self.publisher = (
            Publisher(
                url=url,
                name=self.name,
                worker_id=worker_id,
                options=self.options,
                topology=self.topology,
                outbox=Outbox(engine.store),
                external_tasks=engine.external_tasks,
                stats=self.stats,
            )
            if publish
            else None
        )
        self.consumer = _Consumer(self) if consume else None
        self._listener: NotifyListener | None = None
        self._started = False
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> RabbitMQBridge:
        if self._started:
            return self
        self._started = True
        if self.publisher is not None:
            self.engine.add_listener(self._on_commit)
            self._listener = NotifyListener(
                self.engine.store, self.publisher.wake, name=f"bridge-{self.name}"
            ).start()
            self.publisher.start()
        if self.consumer is not None:
            self.consumer.start()
        log.info(
            "bridge %s started: topics %s, worker id %s",
            self.name,
            ", ".join(self.topology.topics),
            self.worker_id,
        )
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop consuming (unacknowledged results go back to the queue), let the publish batch
        in flight land, and close both connections. Idempotent."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        if self.consumer is not None:
            self.consumer.stop(timeout)
        if self.publisher is not None:
            self.engine.remove_listener(self._on_commit)
            if self._listener is not None:
                self._listener.stop(timeout)
            self.publisher.stop(timeout)
        log.info("bridge %s stopped: %s", self.name, self.stats.snapshot())

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once both sides are connected (for scripts and tests)."""
        ok = True
        if self.publisher is not None:
            ok = self.publisher.ready.wait(timeout) and ok
        if self.consumer is not None:
            ok = self.consumer.ready.wait(timeout) and ok
        return ok

    def __enter__(self) -> RabbitMQBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_commit(self, _instance_id: str) -> None:
        if self.publisher is not None:
            self.publisher.wake()

    # -- the broker side ----------------------------------------------------------------

    def declare_topology(self) -> None:
        """Declare the exchanges and queues (idempotent) on a short-lived connection."""
        declare_topology(self.url, self.name, self.topology)

    # -- results ------------------------------------------------------------------------

    def handle_result(self, body: bytes) -> str:
        """Apply one result message; returns its outcome (see ``ACKED``, ``REJECTED``,
        ``RETRY``). Raises nothing."""
        return self.handle_results([body])[0]

    def handle_results(self, bodies: Sequence[bytes]) -> list[str]:
        """Apply a batch of result messages, one outcome per message, in order.

        Completions and BPMN errors go to ``external_tasks.report_all``, which applies the
        reports on one instance in one write (the 50 results of a multi-instance arrive
        together); failures are reported one by one."""
        outcomes: list[str | None] = [None] * len(bodies)
        parsed: list[tuple[int, Result]] = []
        for i, body in enumerate(bodies):
            try:
                parsed.append((i, bridge_messages.parse_result(body)))
            except InvalidMessage as exc:
                self.stats.add("invalid")
                log.warning("bridge %s: invalid result message rejected: %s", self.name, exc)
                outcomes[i] = "invalid"
        reports = [(i, r) for i, r in parsed if r.kind != "failure"]
        if reports:
            try:
                answers: list[Any] = self.engine.external_tasks.report_all(
                    [(r.kind, r.task_id, self.worker_id, _payload(r)) for _i, r in reports]
                )
            except Exception as exc:  # noqa: BLE001 - classified like a per-report error
                answers = [exc] * len(reports)
            for (i, result), answer in zip(reports, answers, strict=True):
                outcomes[i] = self._outcome(result, answer)
        for i, result in parsed:
            if result.kind == "failure":
                outcomes[i] = self._outcome(result, self._report_failure(result))
        return [o if o is not None else "rejected" for o in outcomes]

    def _report_failure(self, result: Result) -> bool | BaseException:
        try:
            return self.engine.external_tasks.handle_failure(
                result.task_id,
                self.worker_id,
                result.error_message,
                error_details=result.error_details,
                retries=result.retries,
                retry_timeout=result.retry_timeout,
            )
        except Exception as exc:  # noqa: BLE001 - classified by _outcome
            return exc

    def _outcome(self, result: Result, answer: Any) -> str:
        """What an engine answer (True, False for a duplicate, or an exception) means for the
        message; counted and logged here (the engine already logs duplicates at WARNING)."""
        task_id = result.task_id
        if answer is True:
            if result.kind == "failure":
                self.stats.add("failed")
                if result.retries > 0 and self.publisher is not None:
                    # Due again after retry_timeout: the publisher's scan sends it again.
                    self.publisher.wake(scan=result.retry_timeout <= self.options.poll_interval)
                return "failed"
            if result.kind == "bpmn_error":
                self.stats.add("bpmn_errors")
                return "bpmn_error"
            self.stats.add("completed")
            return "completed"
        if answer is False:
            self.stats.add("duplicates")
            return "duplicate"
        if isinstance(answer, NotFound):
            self.stats.add("unknown")
            log.warning("bridge %s: result for unknown task rejected: %s", self.name, answer)
            return "unknown"
        if isinstance(answer, LockLost):
            self.stats.add("stale")
            log.warning(
                "bridge %s: stale result for task %s ignored: %s", self.name, task_id, answer
            )
            return "stale"
        if isinstance(answer, TRANSIENT):
            self.stats.add("requeued")
            log.warning("bridge %s: result for task %s requeued (%s)", self.name, task_id, answer)
            return RETRY
        self.stats.add("rejected")
        if isinstance(answer, EngineError):
            log.warning("bridge %s: result for task %s rejected: %s", self.name, task_id, answer)
        else:
            log.error(
                "bridge %s: result for task %s rejected",
                self.name,
                task_id,
                exc_info=answer if isinstance(answer, BaseException) else None,
            )
        return "rejected"


def _payload(result: Result) -> dict[str, Any]:
    if result.kind == "complete":
        return result.variables
    return {
        "code": result.error_code,
        "message": result.error_message,
        "variables": result.variables,
    }


class _Consumer:
    """Reads result messages on its own blocking connection; acknowledges after the commit."""

    def __init__(self, bridge: RabbitMQBridge) -> None:
        self.bridge = bridge
        self.options = bridge.options
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._buffer: list[tuple[int, bytes]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._retry = Backoff(self.options.reconnect_initial, self.options.reconnect_max)

    def start(self) -> None:
        if self.options.consumer_threads > 1:
            self._pool = ThreadPoolExecutor(
                self.options.consumer_threads, thread_name_prefix="spillway-bridge-apply"
            )
        self._thread = threading.Thread(
            target=self._run, name="spillway-bridge-consume", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _run(self) -> None:
        consume_with_reconnect(
            self.bridge.url,
            f"{self.bridge.name}:consume",
            stopping=self._stopping,
            ready=self.ready,
            backoff=Backoff(self.options.reconnect_initial, self.options.reconnect_max),
            setup=self._subscribe,
            pending=lambda: bool(self._buffer),
            drain=self._drain,
            closed=lambda: self._buffer.clear(),
            lost=self._lost,
            failed=self._failed,
        )
        log.info("bridge %s: consumer stopped", self.bridge.name)

    def _subscribe(self, channel: Any) -> None:
        topology = self.bridge.topology
        topology.declare_results(channel)
        channel.basic_qos(prefetch_count=self.options.prefetch)
        channel.basic_consume(topology.result_queue, self._on_message)
        log.info("bridge %s: consuming %s", self.bridge.name, topology.result_queue)

    def _lost(self, exc: BaseException) -> None:
        self.bridge.stats.add("reconnects")
        log.warning(
            "bridge %s: consumer connection lost (%s); unacknowledged results will be redelivered",
            self.bridge.name,
            exc,
        )

    def _failed(self, _exc: Exception) -> None:
        log.exception("bridge %s: consumer failed; reconnecting", self.bridge.name)

    def _on_message(self, _channel: Any, method: Any, _props: Any, body: bytes) -> None:
        self._buffer.append((method.delivery_tag, body))

    def _drain(self, channel: Any) -> None:
        """Apply the buffered results, then tell the broker: all acknowledged in one frame
        when all went through, else one by one."""
        batch, self._buffer = self._buffer, []
        bodies = [body for _tag, body in batch]
        if self._pool is not None and len(bodies) > 1:
            # Contiguous chunks: results of one instance mostly stay together, and the
            # engine merges those that do not into its write for that instance.
            size = -(-len(bodies) // self.options.consumer_threads)
            chunks = [bodies[i : i + size] for i in range(0, len(bodies), size)]
            outcomes = [
                o for part in self._pool.map(self.bridge.handle_results, chunks) for o in part
            ]
        else:
            outcomes = self.bridge.handle_results(bodies)
        if all(o in ACKED for o in outcomes):
            channel.basic_ack(batch[-1][0], multiple=True)
            self._retry.reset()
            return
        retry = False
        for (tag, _body), outcome in zip(batch, outcomes, strict=True):
            if outcome in ACKED:
                channel.basic_ack(tag)
            elif outcome == RETRY:
                channel.basic_nack(tag, requeue=True)
                retry = True
            else:
                channel.basic_reject(tag, requeue=False)
        if retry:
            # The database is down or overloaded: give it time before the redeliveries.
            self._stopping.wait(self._retry.next())
        else:
            self._retry.reset()


#: BridgeOptions lives in engine.bridge.options; users import both from here.
__all__ = ["BridgeOptions", "RabbitMQBridge"]
