"""The bridge's publisher: pending outbox rows to the broker, deleted only once confirmed.

One thread runs a pika ``SelectConnection`` (asynchronous, so a whole batch is in flight and
confirmed together instead of one broker round trip per message). Its loop, all on that thread:
claim a batch of pending outbox rows -> publish each (persistent, ``mandatory``) -> collect the
broker's confirms -> delete the confirmed rows; unconfirmed, nacked or returned rows stay pending
and go out again later. One batch is in flight at a time.

A batch starts when woken (a commit in this process via an engine listener, one on another node
via PostgreSQL ``LISTEN``), and on a poll tick. The tick also re-publishes tasks whose bridge lock
expired without an answer, and tasks a failure result made due again: the bridge fetches and
locks them like any worker (``external_tasks.fetch_and_lock``) and publishes them directly;
a batch the broker did not confirm is unlocked again so the next tick retries it.

A lost connection aborts the batch in flight (rows stay pending) and reconnects with capped
exponential backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.spec

from engine.bridge.amqp import (
    CONNECTION_ERRORS,
    Backoff,
    Topology,
    connection_parameters,
    declare_topology,
)
from engine.bridge.options import BridgeOptions
from engine.core.stats import Counters
from engine.storage.outbox import Outbox, OutboxBatch, task_message
from engine.storage.outbox import messages as row_messages
from engine.work.host import ExternalTaskApi

log = logging.getLogger("spillway.bridge")

#: Called when a batch has landed: (task ids confirmed, task ids not confirmed).
Landing = Callable[[list[str], list[str]], None]


@dataclass
class _Flight:
    """The batch in flight: delivery tag -> task id, and what the broker said so far."""

    tags: dict[int, str]
    on_done: Landing
    started: float
    full: bool
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    returned: set[str] = field(default_factory=set)


class Publisher:
    """Sends the outbox's task messages with publisher confirms, on its own connection and
    thread; re-sends tasks whose bridge lock expired."""

    def __init__(
        self,
        *,
        url: str,
        name: str,
        worker_id: str,
        options: BridgeOptions,
        topology: Topology,
        outbox: Outbox,
        external_tasks: ExternalTaskApi,
        stats: Counters,
    ) -> None:
        self.url = url
        self.name = name
        self.worker_id = worker_id
        self.options = options
        self.topology = topology
        self.outbox = outbox
        self.external_tasks = external_tasks
        self.stats = stats
        #: Set while connected with confirms on; cleared on connection loss.
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._channel: Any = None
        self._flight: _Flight | None = None
        self._next_tag = 0
        self._wake_lock = threading.Lock()
        self._wake_queued = False
        self._scan_due = 0.0  # monotonic time of the next lock-expiry scan
        self._connected_once = False
        # A database that refuses (down, or deletes failing) holds publishing back, doubling:
        # otherwise the same unrecorded rows would go out again on every poll.
        self._db_backoff = Backoff(self.options.poll_interval, self.options.reconnect_max)
        self._hold_until = 0.0

    # -- lifecycle (any thread) ---------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="spillway-bridge-publish", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None) -> None:
        self._stopping.set()
        self._call_soon(self._shutdown)
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self, scan: bool = False) -> None:
        """Publish what is pending soon (and scan for expired locks when ``scan``)."""
        if scan:
            self._scan_due = 0.0
        with self._wake_lock:
            if self._wake_queued:
                return
            self._wake_queued = True
        if not self._call_soon(self._on_wake):
            with self._wake_lock:
                self._wake_queued = False

    def _call_soon(self, fn: Callable[[], None]) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            conn.ioloop.add_callback_threadsafe(fn)
        except Exception:  # noqa: BLE001 - the loop is closing; the next connection pumps
            return False
        return True

    # -- connection (publisher thread) --------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(self.options.reconnect_initial, self.options.reconnect_max)
        while not self._stopping.is_set():
            try:
                declare_topology(self.url, self.name, self.topology)
            except CONNECTION_ERRORS as exc:
                self._wait_reconnect(backoff, exc)
                continue
            params = connection_parameters(self.url, f"{self.name}:publish")
            conn = pika.SelectConnection(
                params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self._conn = conn
            self._connected_once = False
            try:
                conn.ioloop.start()
            finally:
                self._conn = None
                self._channel = None
                self.ready.clear()
                self._abort_flight()
                conn.ioloop.close()
            if self._connected_once:
                backoff.reset()
            if not self._stopping.is_set():
                self._wait_reconnect(backoff, None)
        log.info("bridge %s: publisher stopped", self.name)

    def _wait_reconnect(self, backoff: Backoff, exc: BaseException | None) -> None:
        delay = backoff.next()
        if exc is not None:
            log.warning(
                "bridge %s: broker unreachable (%s); retrying in %.1f s",
                self.name,
                exc,
                delay,
            )
        self._stopping.wait(delay)

    def _on_open(self, conn: Any) -> None:
        conn.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, conn: Any, exc: BaseException) -> None:
        log.warning("bridge %s: publisher cannot connect (%s)", self.name, exc)
        conn.ioloop.stop()

    def _on_closed(self, conn: Any, exc: BaseException) -> None:
        self._channel = None
        self.ready.clear()
        self._abort_flight()
        if not self._stopping.is_set():
            self.stats.add("reconnects")
            log.warning("bridge %s: publisher connection lost (%s)", self.name, exc)
        conn.ioloop.stop()

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        self._next_tag = 0
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_channel_closed(self, channel: Any, exc: BaseException) -> None:
        self._channel = None
        self.ready.clear()
        self._abort_flight()
        conn = self._conn
        if conn is not None and conn.is_open:
            if not self._stopping.is_set():
                log.warning("bridge %s: publish channel closed (%s)", self.name, exc)
            conn.close()

    def _on_confirm_mode(self, _frame: Any) -> None:
        self._connected_once = True
        self.ready.set()
        log.info("bridge %s: publisher connected", self.name)
        self._tick()

    def _shutdown(self) -> None:
        """Stop: let the batch in flight land (briefly), then close."""
        conn = self._conn
        if conn is None:
            return
        if self._flight is not None and conn.is_open:
            conn.ioloop.call_later(self.options.stop_grace, self._close)
            return
        self._close()

    def _close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        if conn.is_open:
            conn.close()
        elif not conn.is_closing:
            conn.ioloop.stop()

    # -- the publish loop (publisher thread) --------------------------------------------

    def _tick(self) -> None:
        conn = self._conn
        if conn is None or self._stopping.is_set():
            return
        conn.ioloop.call_later(self.options.poll_interval, self._tick)
        flight = self._flight
        if flight is not None and time.monotonic() - flight.started > self.options.confirm_timeout:
            log.warning(
                "bridge %s: %d messages unconfirmed after %.0f s; reconnecting",
                self.name,
                len(flight.tags),
                self.options.confirm_timeout,
            )
            conn.close()
            return
        self._pump()

    def _on_wake(self) -> None:
        with self._wake_lock:
            self._wake_queued = False
        self._pump()

    def _pump(self) -> None:
        """Put the next batch in flight: expired locks and due retries when a scan is due (so
        a busy outbox cannot starve them), else pending outbox rows."""
        if self._stopping.is_set() or self._channel is None or self._flight is not None:
            return
        if time.monotonic() < self._hold_until:
            return  # the tick after the hold tries again
        try:
            if time.monotonic() >= self._scan_due:
                self._scan_due = time.monotonic() + self.options.scan_interval
                if self._republish_expired():
                    return
            self._publish_outbox()
        except Exception:
            log.exception(
                "bridge %s: reading work to publish failed; retrying in %.1f s",
                self.name,
                self._hold(),
            )

    def _hold(self) -> float:
        delay = self._db_backoff.next()
        self._hold_until = time.monotonic() + delay
        return delay

    def _publish_outbox(self) -> bool:
        batch = self.outbox.claim(self.topology.topics, self.options.batch_size)
        if batch is None:
            return False
        items = []
        tasks_of: dict[str, list[str]] = {}  # outbox row id -> its task ids
        for row in batch.rows:
            ids = tasks_of[row["id"]] = []
            for message in row_messages(row):
                ids.append(message["task_id"])
                items.append((message["task_id"], row["channel"], self.topology.task_body(message)))

        def landed(ok: list[str], failed: list[str]) -> None:
            self._outbox_landed(batch, tasks_of, ok, failed)

        self._send(items, landed, full=len(batch.rows) >= self.options.batch_size)
        return True

    def _outbox_landed(
        self,
        batch: OutboxBatch,
        tasks_of: dict[str, list[str]],
        ok: list[str],
        failed: list[str],
    ) -> None:
        """Delete the rows whose every message was confirmed; a row with one unconfirmed
        message stays and goes out again whole (its confirmed messages too: at least once)."""
        confirmed = set(ok)
        batch.finish([rid for rid, ids in tasks_of.items() if confirmed.issuperset(ids)])
        self.stats.add("published", len(ok))
        if failed:
            log.warning(
                "bridge %s: %d task messages not confirmed; they stay in the outbox",
                self.name,
                len(failed),
            )

    def _republish_expired(self) -> bool:
        """Fetch and lock (as the bridge's worker) what is fetchable again, and send it."""
        tasks = self.external_tasks.fetch_and_lock(
            self.worker_id,
            topics=list(self.topology.topics),
            max_tasks=self.options.batch_size,
            lock_duration=self.options.publish_lock,
            variables=self.options.variables,
        )
        if not tasks:
            return False
        items = []
        for task in tasks:
            row = {
                "id": task.id,
                "topic": task.topic,
                "instance_id": task.instance_id,
                "activity_id": task.activity_id,
                "process_key": task.process_key,
                "business_key": task.business_key,
                "retries": task.retries,
            }
            payload = task_message(row, task.variables)
            items.append((task.id, task.topic, self.topology.task_body(payload)))
        log.info(
            "bridge %s: publishing %d tasks again (lock expired or retry due)",
            self.name,
            len(items),
        )
        self._send(items, self._republish_landed, full=len(tasks) >= self.options.batch_size)
        return True

    def _republish_landed(self, ok: list[str], failed: list[str]) -> None:
        self.stats.add("republished", len(ok))
        for task_id in failed:
            try:
                self.external_tasks.unlock(task_id)
            except Exception:  # its lock expires anyway
                log.exception("bridge %s: unlocking task %s failed", self.name, task_id)

    def _send(self, items: list[tuple[str, str, bytes]], on_done: Landing, full: bool) -> None:
        flight = _Flight({}, on_done, time.monotonic(), full)
        self._flight = flight
        channel = self._channel
        try:
            for task_id, routing_key, body in items:
                channel.basic_publish(
                    self.topology.task_exchange,
                    routing_key,
                    body,
                    self.topology.task_properties(task_id),
                    mandatory=True,
                )
                self._next_tag += 1
                flight.tags[self._next_tag] = task_id
        except CONNECTION_ERRORS as exc:
            log.warning("bridge %s: publishing failed (%s)", self.name, exc)
            flight.failed.extend(task_id for task_id, _r, _b in items[len(flight.tags) :])
            self._abort_flight()

    def _on_return(self, _channel: Any, method: Any, props: Any, _body: bytes) -> None:
        flight = self._flight
        task_id = getattr(props, "message_id", None)
        if flight is not None and task_id:
            flight.returned.add(task_id)
        log.error(
            "bridge %s: broker returned the message of task %s (%s): no queue is bound to "
            "routing key '%s' on exchange '%s'",
            self.name,
            task_id,
            method.reply_text,
            method.routing_key,
            method.exchange,
        )

    def _on_confirm(self, frame: Any) -> None:
        flight = self._flight
        if flight is None:
            return
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            tags = [tag for tag in flight.tags if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            task_id = flight.tags.pop(tag, None)
            if task_id is None:
                continue
            if acked and task_id not in flight.returned:
                flight.ok.append(task_id)
            else:
                flight.failed.append(task_id)
        if not flight.tags:
            self._land()

    def _land(self) -> None:
        flight = self._flight
        if flight is None:
            return
        self._flight = None
        self._finish(flight, flight.failed)
        conn = self._conn
        if conn is None:
            return
        if self._stopping.is_set():
            self._close()
        elif flight.failed:
            conn.ioloop.call_later(self.options.poll_interval, self._pump)
        elif flight.full:
            self._pump()

    def _abort_flight(self) -> None:
        """The connection or channel is gone: what was not confirmed is not published."""
        flight = self._flight
        if flight is None:
            return
        self._flight = None
        self._finish(flight, [*flight.failed, *flight.tags.values()])

    def _finish(self, flight: _Flight, failed: list[str]) -> None:
        try:
            flight.on_done(flight.ok, failed)
        except Exception:
            log.exception(
                "bridge %s: recording %d published messages failed; they will be sent again "
                "(in %.1f s at the earliest)",
                self.name,
                len(flight.ok),
                self._hold(),
            )
        else:
            self._db_backoff.reset()
