"""The RabbitMQ bridge against the real broker (and SQLite and PostgreSQL).

Every test uses its own exchanges and queues (a random prefix) and deletes them afterwards.
The broker tests skip with a one-line reason when RabbitMQ is unreachable, unless
SPILLWAY_REQUIRE_SERVICES=1 (as in CI), where they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pika
import pytest
import sqlalchemy as sa

from engine import ProcessEngine
from engine.bridge.messages import InvalidMessage, parse_result
from engine.bridge.rabbitmq import BridgeOptions, RabbitMQBridge
from engine.core.errors import StoreError
from engine.storage import schema as t
from engine.storage.outbox import Outbox, OutboxRoute, drop_task, route_task
from engine.testing import ManualClock
from tests.bpmnbuild import process, service, user
from tests.conftest import REQUIRE

HAVE_RABBITMQCTL = shutil.which("rabbitmqctl") is not None
AMQP_URL = os.environ.get("SPILLWAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
ROOT = Path(__file__).parent.parent
TOPIC = "copy"
FAST = BridgeOptions(
    poll_interval=0.1,
    scan_interval=0.2,
    reconnect_initial=0.1,
    reconnect_max=1.0,
    stop_grace=1.0,
    confirm_timeout=5.0,
)

_amqp_state: dict[str, str] = {}


def external(task_id: str = "Work", topic: str = TOPIC, body: str = "") -> str:
    return service(task_id, extra=f'camunda:type="external" camunda:topic="{topic}"', body=body)


ONE_TASK = process("bridged", external())
#: A user task first, so that the external task is created by a later command.
AFTER_USER = process("after_user", user("Approve"), external())
#: An error boundary on the external task.
WITH_BOUNDARY = process(
    "with_boundary",
    external("Work", body=""),
    '<bpmn:boundaryEvent id="Declined" attachedToRef="Work">'
    '<bpmn:errorEventDefinition errorRef="Err_Declined" /></bpmn:boundaryEvent>',
    '<bpmn:endEvent id="DeclinedEnd" />',
    start='<bpmn:startEvent id="StartEvent_1" />',
    flows=[("StartEvent_1", "Work"), ("Work", "EndEvent_1"), ("Declined", "DeclinedEnd")],
    definitions='<bpmn:error id="Err_Declined" errorCode="DECLINED" />',
)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def rabbitmq_url() -> str:
    """The broker's URL, or skip/fail with the reason."""
    if "error" not in _amqp_state and "ok" not in _amqp_state:
        try:
            params = pika.URLParameters(AMQP_URL)
            params.connection_attempts = 1
            params.socket_timeout = 2
            pika.BlockingConnection(params).close()
            _amqp_state["ok"] = "1"
        except Exception as exc:
            _amqp_state["error"] = f"{AMQP_URL}: {type(exc).__name__}: {exc}".splitlines()[0]
    if "error" in _amqp_state:
        message = f"RabbitMQ unavailable: {_amqp_state['error']}"
        if REQUIRE:
            pytest.fail(message + " (SPILLWAY_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(message)
    return AMQP_URL


class Broker:
    """A plain pika client with the test's own names: reads task messages, sends results."""

    def __init__(self, url: str) -> None:
        self.url = url
        prefix = f"swtest.{uuid.uuid4().hex[:10]}"
        self.names = {
            "task_exchange": f"{prefix}.tasks",
            "task_queue": f"{prefix}.tasks.{{topic}}",
            "result_exchange": f"{prefix}.results",
            "result_queue": f"{prefix}.results",
        }
        self.dead_letter_exchange = f"{prefix}.dlx"
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.conn.channel()

    def task_queue(self, topic: str = TOPIC) -> str:
        return self.names["task_queue"].format(topic=topic)

    @property
    def result_queue(self) -> str:
        return self.names["result_queue"]

    def get(self, queue: str) -> dict[str, Any] | None:
        """The next message of ``queue``, or None (also while the queue is not declared yet)."""
        try:
            method, _props, body = self.channel.basic_get(queue, auto_ack=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            self.channel = self.conn.channel()
            return None
        return None if method is None else json.loads(body)

    def take(self, n: int, queue: str | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait for ``n`` task messages (more may follow)."""
        queue = queue or self.task_queue()
        got: list[dict[str, Any]] = []

        def enough() -> bool:
            while (msg := self.get(queue)) is not None:
                got.append(msg)
            return len(got) >= n

        wait_for(enough, timeout, f"{n} messages on {queue} (got {len(got)})")
        return got

    def take_all(self, task_ids: set[str], timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every one of ``task_ids`` arrived (at least once); all messages taken."""
        queue = self.task_queue()
        got: list[dict[str, Any]] = []

        def complete() -> bool:
            while (msg := self.get(queue)) is not None:
                got.append(msg)
            return {m["task_id"] for m in got} >= task_ids

        wait_for(complete, timeout, f"{len(task_ids)} tasks on {queue}")
        return got

    def depth(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def reply(self, task: dict[str, Any], body: bytes | dict[str, Any]) -> None:
        """Answer a task message through its reply address."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.channel.basic_publish(task["reply_exchange"], task["reply_routing_key"], data)

    def send_result(self, body: bytes) -> None:
        self.channel.basic_publish(self.names["result_exchange"], self.result_queue, body)

    def connections_named(self, *fragments: str) -> list[str]:
        """Broker pids of the connections whose client name starts with one of ``fragments``."""
        out = subprocess.run(
            ["rabbitmqctl", "-q", "-s", "list_connections", "pid", "client_properties"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [
            line.split("\t", 1)[0]
            for line in out.splitlines()
            if any(f'{{"connection_name","{fragment}' in line for fragment in fragments)
        ]

    def close_connections(self, *fragments: str) -> int:
        """Close connections from the broker side, as a network fault would: the broker's own
        ``rabbitmqctl`` (all at once) where it is installed, else our process's AMQP sockets
        are shut down under the clients (fragments then do not apply: every connection of this
        process but this helper's goes)."""
        if not HAVE_RABBITMQCTL:
            return self._shut_own_sockets()
        pids = self.connections_named(*fragments)
        closing = [
            subprocess.Popen(
                ["rabbitmqctl", "-q", "close_connection", pid, "test: simulated connection loss"],
                stdout=subprocess.DEVNULL,
            )
            for pid in pids
        ]
        assert all(p.wait(timeout=60) == 0 for p in closing)
        return len(pids)

    def _shut_own_sockets(self) -> int:
        port = pika.URLParameters(self.url).port
        self.conn.close()  # ours reconnects below; every other AMQP socket here is the bridge's
        count = 0
        for name in os.listdir("/proc/self/fd"):
            try:
                if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                    continue
                sock = socket.socket(fileno=os.dup(int(name)))
            except OSError:
                continue
            with sock:
                try:
                    if sock.getpeername()[1] == port:
                        sock.shutdown(socket.SHUT_RDWR)  # the socket, not just this dup
                        count += 1
                except OSError:
                    continue
        self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
        self.channel = self.conn.channel()
        return count

    def cleanup(self, topics: tuple[str, ...] = (TOPIC,)) -> None:
        if self.conn.is_closed:
            self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
        ch = self.conn.channel()
        for queue in [
            *(self.task_queue(topic) for topic in topics),
            self.result_queue,
            f"{self.result_queue}.dead",
        ]:
            ch.queue_delete(queue)
        for exchange in [
            self.names["task_exchange"],
            self.names["result_exchange"],
            self.dead_letter_exchange,
        ]:
            ch.exchange_delete(exchange)
        self.conn.close()


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    b = Broker(rabbitmq_url)
    yield b
    b.cleanup()


BridgeFactory = Callable[..., RabbitMQBridge]


@pytest.fixture
def make_bridge(broker: Broker) -> Iterator[BridgeFactory]:
    """Bridges on the test's own exchanges and queues; stopped at the end."""
    bridges: list[RabbitMQBridge] = []

    def make(eng: ProcessEngine, *, start: bool = True, **kwargs: Any) -> RabbitMQBridge:
        kwargs.setdefault("options", FAST)
        for key, value in broker.names.items():
            kwargs.setdefault(key, value)
        bridge = RabbitMQBridge(eng, broker.url, [TOPIC], **kwargs)
        bridges.append(bridge)
        if start:
            bridge.start()
            assert bridge.wait_ready(10), "bridge did not connect"
        return bridge

    yield make
    for bridge in bridges:
        bridge.stop()


def outbox_rows(eng: ProcessEngine) -> list[dict[str, Any]]:
    return Outbox(eng.store).pending()


def external_rows(eng: ProcessEngine) -> list[dict[str, Any]]:
    with eng.store.transaction(write=False) as conn:
        return [dict(r) for r in conn.execute(sa.select(t.external_tasks)).mappings()]


# -- messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"task_id": "t1", "variables": {"a": 1}}', "complete"),
        (b'{"task_id": "t1"}', "complete"),
        (
            b'{"task_id": "t1", "failure": {"message": "m", "retries": 2, "retry_timeout": 1}}',
            "failure",
        ),
        (b'{"task_id": "t1", "bpmn_error": {"code": "C", "variables": {"x": 1}}}', "bpmn_error"),
    ],
)
def test_valid_results_parse(body: bytes, kind: str) -> None:
    result = parse_result(body)
    assert result.task_id == "t1"
    assert result.kind == kind


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"variables": {}}', "task_id"),
        (b'{"task_id": ""}', "task_id"),
        (b'{"task_id": "t", "variables": [1]}', "variables must be a JSON object"),
        (b'{"task_id": "t", "failure": {}, "bpmn_error": {"code": "C"}}', "both"),
        (b'{"task_id": "t", "failure": {"retries": -1}}', "retries"),
        (b'{"task_id": "t", "failure": {"retries": true}}', "retries"),
        (b'{"task_id": "t", "failure": {"retry_timeout": "soon"}}', "retry_timeout"),
        (b'{"task_id": "t", "bpmn_error": {"message": "no code"}}', "bpmn_error.code"),
        (b'{"task_id": "t", "failure": "broke"}', "failure must be a JSON object"),
    ],
)
def test_invalid_results_name_the_problem(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        parse_result(body)


# -- outbound: the outbox ------------------------------------------------------------------


def test_task_and_outbox_row_are_written_together(eng: ProcessEngine) -> None:
    eng.publish_topics([TOPIC], worker_id="bridge:test", lock_duration=60)
    eng.deploy(ONE_TASK)
    inst = eng.start("bridged", variables={"item": 7}, business_key="B-1")

    [task] = external_rows(eng)
    [row] = outbox_rows(eng)
    assert row["channel"] == TOPIC
    assert row["payload"] == {
        "messages": [
            {
                "format": 1,
                "task_id": task["id"],
                "topic": TOPIC,
                "instance_id": inst.id,
                "activity_id": "Work",
                "process_key": "bridged",
                "business_key": "B-1",
                "retries": None,
                "variables": {"item": 7},
            }
        ]
    }
    # Locked for the bridge from birth, so in-engine pools leave it alone until it expires.
    assert task["lock_owner"] == "bridge:test"
    assert task["lock_expires_at"] == eng.now() + timedelta(seconds=60)


def test_one_outbox_row_per_commit_carries_all_its_tasks(eng: ProcessEngine) -> None:
    eng.publish_topics([TOPIC], variables=["item"])
    mi = external(
        body="<bpmn:multiInstanceLoopCharacteristics>"
        "<bpmn:loopDataInputRef>items</bpmn:loopDataInputRef>"
        '<bpmn:inputDataItem id="item" name="item" />'
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    eng.deploy(process("mi_items", mi))
    eng.start("mi_items", variables={"items": list(range(20)), "big": "x" * 1000})
    [row] = outbox_rows(eng)
    messages = row["payload"]["messages"]
    assert {m["task_id"] for m in messages} == {r["id"] for r in external_rows(eng)}
    # Only the variables asked for: each task's own item, not the whole list.
    assert sorted(m["variables"]["item"] for m in messages) == list(range(20))
    assert all(set(m["variables"]) == {"item"} for m in messages)


def test_a_task_ended_in_its_own_commit_leaves_no_message() -> None:
    rows: list[dict[str, Any]] = []
    route = OutboxRoute("bridge:test", 60.0)
    now = ManualClock().now()
    for task_id in ("t1", "t2"):
        task = {"id": task_id, "topic": TOPIC, "instance_id": "i", "activity_id": "A"}
        task.update(process_key="p", business_key=None)
        route_task(rows, task, {}, route, now)
    drop_task(rows, "t1")
    assert [m["task_id"] for m in rows[0]["payload"]["messages"]] == ["t2"]
    drop_task(rows, "t2")
    assert rows == []


def test_unpublished_topics_get_no_outbox_row(eng: ProcessEngine) -> None:
    eng.publish_topics(["other-topic"])
    eng.deploy(ONE_TASK)
    eng.start("bridged")
    [task] = external_rows(eng)
    assert task["lock_owner"] is None
    assert outbox_rows(eng) == []


class Faults:
    """Real database failures on demand: a trigger refuses one operation on one table."""

    def __init__(self, eng: ProcessEngine) -> None:
        self.eng = eng
        self.active: set[tuple[str, str]] = set()

    def refuse(self, op: str, table: str) -> None:
        name = f"refuse_{op.lower()}_{table}"
        with self.eng.store.transaction() as conn:
            if self.eng.store.dialect == "sqlite":
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
                )
            else:
                conn.exec_driver_sql(
                    "CREATE OR REPLACE FUNCTION refuse_by_test() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'refused by test' USING ERRCODE = 'check_violation'; "
                    "END $$ LANGUAGE plpgsql"
                )
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_by_test()"
                )
        self.active.add((op, table))

    def allow(self, op: str, table: str) -> None:
        name = f"refuse_{op.lower()}_{table}"
        on = "" if self.eng.store.dialect == "sqlite" else f" ON {table}"
        with self.eng.store.transaction() as conn:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}{on}")
        self.active.discard((op, table))


@pytest.fixture
def faults(eng: ProcessEngine) -> Iterator[Faults]:
    f = Faults(eng)
    yield f
    for op, table in list(f.active):  # also when the test failed half-way
        f.allow(op, table)


@pytest.mark.parametrize("failing", ["sw_outbox", "sw_external_tasks"])
def test_a_failed_commit_leaves_neither_task_nor_outbox_row(
    eng: ProcessEngine, faults: Faults, failing: str
) -> None:
    eng.publish_topics([TOPIC])
    eng.deploy(AFTER_USER)
    inst = eng.start("after_user")
    faults.refuse("INSERT", failing)
    with pytest.raises(StoreError, match="refused by test"):
        eng.complete_task(inst.id, "Approve")
    faults.allow("INSERT", failing)
    assert external_rows(eng) == []
    assert outbox_rows(eng) == []
    assert eng.get_instance(inst.id).waiting_at == ["Approve"]
    # With the fault gone the same command commits both.
    eng.complete_task(inst.id, "Approve")
    assert len(external_rows(eng)) == 1
    assert len(outbox_rows(eng)) == 1


# -- outbound: publishing ------------------------------------------------------------------


def test_published_after_commit_and_removed_from_outbox_once_confirmed(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng, start=False)
    eng.deploy(ONE_TASK)
    inst = eng.start("bridged", variables={"item": 1}, business_key="B-9")
    # Committed but not yet published: the row waits in the outbox, the queue is empty.
    assert len(outbox_rows(eng)) == 1
    bridge.declare_topology()
    assert broker.depth(broker.task_queue()) == 0

    bridge.start()
    [msg] = broker.take(1)
    [task] = external_rows(eng)
    assert msg["task_id"] == task["id"]
    assert msg["instance_id"] == inst.id
    assert msg["activity_id"] == "Work"
    assert msg["business_key"] == "B-9"
    assert msg["variables"] == {"item": 1}
    assert msg["reply_exchange"] == broker.names["result_exchange"]
    assert msg["reply_routing_key"] == broker.result_queue
    wait_for(lambda: outbox_rows(eng) == [], what="the outbox to empty")
    assert bridge.stats["published"] == 1

    # New tasks while running go out at once (woken by the commit, not by a poll).
    for i in range(20):
        eng.start("bridged", variables={"item": 100 + i})
    msgs = broker.take(20)
    assert sorted(m["variables"]["item"] for m in msgs) == list(range(100, 120))
    wait_for(lambda: outbox_rows(eng) == [], what="the outbox to empty")


def test_messages_are_persistent_on_durable_queues(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    make_bridge(eng)
    eng.deploy(ONE_TASK)
    eng.start("bridged")
    wait_for(lambda: broker.depth(broker.task_queue()) == 1, what="the message")
    _method, props, _body = broker.channel.basic_get(broker.task_queue(), auto_ack=True)
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert props.message_id == external_rows(eng)[0]["id"]
    # Durable queue and exchange: declaring them transient is refused by the broker.
    for declare in (
        lambda ch: ch.queue_declare(broker.task_queue(), durable=False),
        lambda ch: ch.exchange_declare(broker.names["task_exchange"], "direct", durable=False),
    ):
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="durable"):
            declare(broker.conn.channel())


def test_rows_published_but_not_recorded_are_published_again_by_the_next_bridge(
    eng: ProcessEngine, faults: Faults, broker: Broker, make_bridge: BridgeFactory
) -> None:
    first = make_bridge(eng, start=False)
    eng.deploy(ONE_TASK)
    for i in range(5):
        eng.start("bridged", variables={"item": i})
    expected = {r["id"] for r in external_rows(eng)}
    faults.refuse("DELETE", "sw_outbox")
    first.start()
    assert {m["task_id"] for m in broker.take_all(expected)} == expected
    time.sleep(0.3)  # the first bridge tries to record them (and every poll again), and fails
    first.stop()
    faults.allow("DELETE", "sw_outbox")
    assert len(outbox_rows(eng)) == 5  # the broker has them, the outbox does not know
    broker.channel.queue_purge(broker.task_queue())

    second = make_bridge(eng)
    assert sorted(m["task_id"] for m in broker.take(5)) == sorted(expected)
    wait_for(lambda: outbox_rows(eng) == [], what="the outbox to empty")
    assert second.stats["published"] == 5
    assert broker.depth(broker.task_queue()) == 0  # each once: nothing left over


@pytest.mark.slow
def test_a_killed_bridge_process_loses_nothing(
    db_url: str, broker: Broker, make_bridge: BridgeFactory
) -> None:
    """``spillway bridge`` as a process, killed with SIGKILL while publishing; a new bridge
    publishes whatever the dead one had not recorded: every task arrives at least once."""
    eng = ProcessEngine(db_url)
    try:
        eng.publish_topics([TOPIC])
        eng.deploy(ONE_TASK)
        for i in range(300):
            eng.start("bridged", variables={"item": i})
        expected = {r["id"] for r in external_rows(eng)}
        names = broker.names
        cmd = [
            sys.executable,
            "-m",
            "engine.cli.main",
            "--db",
            db_url,
            "bridge",
            "--url",
            broker.url,
            "--topic",
            TOPIC,
            "--batch-size",
            "20",
            "--no-consume",
            "--task-exchange",
            names["task_exchange"],
            "--task-queue",
            names["task_queue"],
            "--result-exchange",
            names["result_exchange"],
            "--result-queue",
            names["result_queue"],
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: _declared(broker) and broker.depth(broker.task_queue()) > 0,
                timeout=30,
                what="the bridge process to publish",
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        bridge = make_bridge(eng)
        try:
            got = broker.take_all(expected)
            assert {m["task_id"] for m in got} == expected
            wait_for(lambda: outbox_rows(eng) == [], what="the outbox to empty")
        finally:
            bridge.stop()  # before its engine closes
    finally:
        eng.close()


def _declared(broker: Broker) -> bool:
    try:
        broker.depth(broker.task_queue())
    except pika.exceptions.ChannelClosedByBroker:
        broker.channel = broker.conn.channel()
        return False
    return True


def test_publisher_reconnects_after_the_broker_drops_it(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng, name=f"swtest-{uuid.uuid4().hex[:8]}", consume=False)
    eng.deploy(ONE_TASK)
    eng.start("bridged", variables={"item": 0})
    broker.take(1)
    assert broker.close_connections(f"{bridge.name}:publish") == 1
    # Tasks created while the bridge is disconnected wait in the outbox...
    for i in range(1, 11):
        eng.start("bridged", variables={"item": i})
    # ...and go out once it is back.
    msgs = broker.take(10, timeout=20)
    assert sorted(m["variables"]["item"] for m in msgs) == list(range(1, 11))
    wait_for(lambda: outbox_rows(eng) == [], what="the outbox to empty")
    assert bridge.stats["reconnects"] >= 1


# -- inbound: results ----------------------------------------------------------------------


def test_a_result_completes_the_task_and_moves_the_instance_on(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng)
    eng.deploy(ONE_TASK)
    inst = eng.start("bridged", variables={"item": 3})
    [task] = broker.take(1)
    broker.reply(task, {"task_id": task["task_id"], "variables": {"copied": 3}})
    wait_for(lambda: eng.get_instance(inst.id).state == "completed", what="completion")
    assert eng.get_instance(inst.id).variables == {"item": 3, "copied": 3}
    assert bridge.stats["completed"] == 1
    wait_for(lambda: broker.depth(broker.result_queue) == 0, what="the result to be acked")
    assert external_rows(eng) == []


def test_a_duplicate_result_is_logged_and_ignored(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = make_bridge(eng)
    eng.deploy(AFTER_USER)
    inst = eng.start("after_user")
    eng.complete_task(inst.id, "Approve")
    [task] = broker.take(1)
    broker.reply(task, {"task_id": task["task_id"], "variables": {"n": 1}})
    broker.reply(task, {"task_id": task["task_id"], "variables": {"n": 2}})
    wait_for(lambda: bridge.stats["duplicates"] == 1, what="the duplicate")
    assert bridge.stats["completed"] == 1
    done = eng.get_instance(inst.id)
    assert done.state == "completed"
    assert done.variables["n"] == 1  # the second answer changed nothing
    assert [h.outcome for h in eng.history(inst.id) if h.activity_id == "Work"] == ["completed"]
    assert any("ignored" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    wait_for(lambda: broker.depth(broker.result_queue) == 0, what="both results acked")


def test_results_of_a_multi_instance_land_and_the_join_fires_once(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng)
    mi = external(
        body="<bpmn:multiInstanceLoopCharacteristics>"
        "<bpmn:loopCardinality>20</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    eng.deploy(process("mi", mi, user("After")))
    inst = eng.start("mi")
    tasks = broker.take(20)
    for task in tasks:
        broker.reply(task, {"task_id": task["task_id"], "variables": {}})
    wait_for(lambda: eng.get_instance(inst.id).waiting_at == ["After"], what="the join")
    assert bridge.stats["completed"] == 20
    assert [h.activity_id for h in eng.history(inst.id)].count("After") == 1


def test_a_failure_with_retries_publishes_the_task_again(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng)
    eng.deploy(ONE_TASK)
    inst = eng.start("bridged", variables={"item": 5})
    [task] = broker.take(1)
    failure = {"message": "disk full", "details": "trace", "retries": 2, "retry_timeout": 0}
    broker.reply(task, {"task_id": task["task_id"], "failure": failure})
    [again] = broker.take(1)
    assert again["task_id"] == task["task_id"]
    assert again["retries"] == 2
    assert again["variables"] == {"item": 5}
    broker.reply(again, {"task_id": again["task_id"], "variables": {"ok": True}})
    wait_for(lambda: eng.get_instance(inst.id).state == "completed", what="completion")
    assert bridge.stats["failed"] == 1
    assert bridge.stats["republished"] == 1


def test_a_failure_without_retries_opens_an_incident_and_retry_publishes_again(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    make_bridge(eng)
    eng.deploy(ONE_TASK)
    inst = eng.start("bridged")
    [task] = broker.take(1)
    broker.reply(task, {"task_id": task["task_id"], "failure": {"message": "bad input"}})
    wait_for(lambda: eng.get_instance(inst.id).state == "incident", what="the incident")
    [incident] = eng.incidents(inst.id)
    assert incident.message == "bad input"
    time.sleep(0.5)  # several scans: an incident's task is not published again by itself
    assert broker.get(broker.task_queue()) is None

    eng.retry(incident.id)
    [again] = broker.take(1)
    assert again["task_id"] == task["task_id"]
    broker.reply(again, {"task_id": again["task_id"], "variables": {}})
    wait_for(lambda: eng.get_instance(inst.id).state == "completed", what="completion")


def test_a_bpmn_error_takes_the_boundary_path(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng)
    eng.deploy(WITH_BOUNDARY)
    inst = eng.start("with_boundary")
    [task] = broker.take(1)
    error = {"code": "DECLINED", "message": "no", "variables": {"reason": "limit"}}
    broker.reply(task, {"task_id": task["task_id"], "bpmn_error": error})
    wait_for(lambda: eng.get_instance(inst.id).state == "completed", what="completion")
    passed = [h.activity_id for h in eng.history(inst.id)]
    assert "DeclinedEnd" in passed
    assert "EndEvent_1" not in passed
    assert eng.get_instance(inst.id).variables["reason"] == "limit"
    assert bridge.stats["bpmn_errors"] == 1


def test_invalid_and_unknown_results_are_rejected_to_the_dead_letter_queue(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng, dead_letter_exchange=broker.dead_letter_exchange)
    broker.send_result(b"{not json")
    broker.send_result(json.dumps({"task_id": "no-such-task", "variables": {}}).encode())
    dead = f"{broker.result_queue}.dead"
    wait_for(lambda: broker.depth(dead) == 2, what="two dead letters")
    assert bridge.stats["invalid"] == 1
    assert bridge.stats["unknown"] == 1
    assert broker.depth(broker.result_queue) == 0


def test_a_result_is_acknowledged_only_after_the_engine_committed(
    eng: ProcessEngine, faults: Faults, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng)
    eng.deploy(ONE_TASK)
    inst = eng.start("bridged")
    [task] = broker.take(1)
    faults.refuse("UPDATE", "sw_instances")  # every instance write now fails
    broker.reply(task, {"task_id": task["task_id"], "variables": {"ok": True}})
    wait_for(lambda: bridge.stats["requeued"] >= 2, what="the result to be requeued")
    assert eng.get_instance(inst.id).state == "active"
    faults.allow("UPDATE", "sw_instances")
    # The broker kept the message: redelivered, it lands now.
    wait_for(lambda: eng.get_instance(inst.id).state == "completed", what="completion")
    assert bridge.stats["completed"] == 1


def test_an_expired_bridge_lock_publishes_the_task_again(
    eng: ProcessEngine, clock: Any, broker: Broker, make_bridge: BridgeFactory
) -> None:
    options = BridgeOptions(**{**FAST.__dict__, "publish_lock": 60.0})
    bridge = make_bridge(eng, options=options)
    eng.deploy(ONE_TASK)
    eng.start("bridged")
    [first] = broker.take(1)
    # Locked for the bridge: in-engine workers of the topic do not get it meanwhile.
    assert eng.external_tasks.fetch_and_lock("pool-1", [TOPIC]) == []
    clock.advance(61)
    bridge.publisher.wake(scan=True)
    [second] = broker.take(1)
    assert second["task_id"] == first["task_id"]
    # Both copies get answered: the first answer completes, the second is a duplicate.
    broker.reply(first, {"task_id": first["task_id"], "variables": {}})
    broker.reply(second, {"task_id": second["task_id"], "variables": {}})
    wait_for(lambda: bridge.stats["duplicates"] == 1, what="the duplicate")
    assert bridge.stats["completed"] == 1
    assert bridge.stats["republished"] == 1


# -- a worker in another process, connection loss --------------------------------------------


def _worker_process(broker: Broker, name: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "engine.bridge.worker", "--url", broker.url, "--topic", TOPIC,
        "--handler", "tests.bridge_handlers:copy", "--name", name,
        "--task-exchange", broker.names["task_exchange"],
        "--task-queue", broker.names["task_queue"],
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "answering" in proc.stdout.readline()  # connected and consuming
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return out


@pytest.mark.slow
def test_a_worker_in_another_process_answers_every_task(
    eng: ProcessEngine, broker: Broker, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge(eng)
    eng.deploy(WITH_BOUNDARY)
    worker = _worker_process(broker, f"swtest-worker-{uuid.uuid4().hex[:6]}")
    try:
        ids = [
            eng.start("with_boundary", {"item": i, "decline": i % 10 == 0}).id for i in range(30)
        ]
        wait_for(
            lambda: all(eng.get_instance(i).state == "completed" for i in ids),
            timeout=30,
            what="every instance to complete",
        )
    finally:
        out = _stop(worker)
    assert "stopped after 30 tasks" in out
    for n, iid in enumerate(ids):
        inst = eng.get_instance(iid)
        passed = [h.activity_id for h in eng.history(iid)]
        if n % 10 == 0:  # the handler raised BpmnError: the boundary path
            assert "DeclinedEnd" in passed
            assert inst.variables["declined_item"] == n
        else:
            assert "EndEvent_1" in passed
            [copied] = [k for k in inst.variables if k.startswith("copied_")]
            assert inst.variables[copied] == n
    assert bridge.stats["completed"] == 27
    assert bridge.stats["bpmn_errors"] == 3


@pytest.mark.slow
def test_work_completes_when_the_broker_drops_every_connection_midway(
    db_url: str, broker: Broker, make_bridge: BridgeFactory
) -> None:
    """Bridge and worker lose their connections while 1,000 tasks are in flight; both
    reconnect with backoff and every task completes exactly once."""
    eng = ProcessEngine(db_url)
    worker_name = f"swtest-worker-{uuid.uuid4().hex[:6]}"
    mi = external(
        body="<bpmn:multiInstanceLoopCharacteristics>"
        "<bpmn:loopCardinality>10</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    bridge = make_bridge(eng, name=f"swtest-{uuid.uuid4().hex[:8]}")
    worker = _worker_process(broker, worker_name)
    try:
        eng.deploy(process("mi10", mi))
        ids = [eng.start("mi10", {"item": i}).id for i in range(100)]
        wait_for(lambda: bridge.stats["completed"] >= 50, timeout=30, what="the first results")
        if HAVE_RABBITMQCTL:
            closed = broker.close_connections(bridge.name, worker_name)
            assert closed == 3  # the bridge's publisher and consumer, the worker
        else:  # our sockets shut under the bridge; the worker crashes and a new one starts
            assert broker.close_connections() == 2
            worker.kill()
            worker.communicate(timeout=30)
            worker = _worker_process(broker, worker_name)
        wait_for(
            lambda: len(eng.instances(state="completed")) == 100,
            timeout=60,
            what="every instance to complete",
        )
        assert bridge.stats["reconnects"] >= 2
        assert bridge.stats["completed"] == 1000
        for iid in ids:
            ends = [h for h in eng.history(iid) if h.activity_id == "EndEvent_1"]
            assert len(ends) == 1
        assert outbox_rows(eng) == []
        assert external_rows(eng) == []
    finally:
        _stop(worker)
        bridge.stop()
        eng.close()


def test_the_bridge_command_needs_a_topic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.cli.main import main

    monkeypatch.delenv("SPILLWAY_BRIDGE_TOPICS", raising=False)
    assert main(["--db", f"sqlite:///{tmp_path / 'x.db'}", "bridge"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "spillway: error: spillway bridge needs at least one --topic"
    )
