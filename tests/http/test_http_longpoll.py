"""fetchAndLock long polling: woken by commits of this node and of other nodes, no thread held
per waiting request, and answered at once when the server shuts down."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import AUTH, HERE, Served, serve, wait_for

from engine import ProcessEngine
from engine.core.clock import SystemClock

LONG = 20_000  # ms: far longer than any test step; a poll answering early was woken


@pytest.fixture
def quiet(http_engine: ProcessEngine) -> Iterator[Served]:
    """A server whose waiting polls never look again by themselves: only wake-ups answer."""
    http_engine.deploy(str(HERE / "payment.bpmn"))
    s = serve(http_engine, recheck_interval=600.0)
    yield s
    s.client.close()
    s.stop()


class Poll(threading.Thread):
    def __init__(self, served: Served, worker: str, timeout_ms: int = LONG) -> None:
        super().__init__(daemon=True)
        self.url = f"{served.base}/external-task/fetchAndLock"
        self.body = {
            "workerId": worker,
            "maxTasks": 1,
            "asyncResponseTimeout": timeout_ms,
            "topics": [{"topicName": "charge", "lockDuration": 30_000}],
        }
        self.result: list[dict[str, object]] | None = None
        self.status = 0
        self.start()

    def run(self) -> None:
        response = httpx.post(self.url, json=self.body, auth=AUTH, timeout=60)
        self.status = response.status_code
        self.result = response.json()


def _waiting(served: Served, count: int) -> None:
    hub = served.server.config.app.state.hub  # type: ignore[attr-defined]
    wait_for(lambda: hub.waiting >= count, 10, "polls")


def test_a_commit_of_another_node_wakes_a_waiting_poll(quiet: Served, db_url: str) -> None:
    poll = Poll(quiet, "w1")
    _waiting(quiet, 1)
    other = ProcessEngine(db_url, clock=SystemClock())  # another node on the same database
    try:
        inst = other.start("Payment", {"amount": 3})
    finally:
        other.close()
    poll.join(15)
    assert not poll.is_alive(), "the poll was not woken"
    assert poll.status == 200 and poll.result is not None
    assert [t["processInstanceId"] for t in poll.result] == [inst.id]


def test_a_commit_of_this_node_wakes_a_waiting_poll(quiet: Served) -> None:
    poll = Poll(quiet, "w1")
    _waiting(quiet, 1)
    inst = quiet.engine.start("Payment", {"amount": 3})
    poll.join(15)
    assert not poll.is_alive() and poll.result is not None
    assert poll.result[0]["processInstanceId"] == inst.id


def test_many_waiting_polls_hold_no_threads_and_shutdown_answers_them(quiet: Served) -> None:
    polls = [Poll(quiet, f"w{n}") for n in range(60)]  # more than the server's thread pool
    _waiting(quiet, 60)
    started = time.monotonic()
    assert quiet.client.get("/version").status_code == 200
    inst = quiet.client.post(
        "/process-definition/key/Payment/start", json={"variables": {"amount": {"value": 1}}}
    ).json()
    wait_for(lambda: sum(1 for p in polls if p.result) == 1, 15, "one poll to take the task")
    assert time.monotonic() - started < LONG / 1000
    (winner,) = [p for p in polls if p.result]
    assert winner.result is not None and winner.result[0]["processInstanceId"] == inst["id"]
    quiet.stop()  # graceful: the rest answer [] now, not after their 20 s
    for poll in polls:
        poll.join(10)
    assert all(not p.is_alive() for p in polls)
    assert sorted(len(p.result or []) for p in polls) == [0] * 59 + [1]
    assert all(p.status == 200 for p in polls)


def test_timeout_zero_answers_at_once_and_limits_are_checked(served: Served) -> None:
    body = {"workerId": "w", "maxTasks": 1, "topics": [{"topicName": "x", "lockDuration": 1}]}
    assert served.client.post("/external-task/fetchAndLock", json=body).json() == []
    too_long = {**body, "asyncResponseTimeout": 1_800_001}
    response = served.client.post("/external-task/fetchAndLock", json=too_long)
    assert response.status_code == 400 and "1800000" in response.json()["message"]
    no_lock = {"workerId": "w", "maxTasks": 1, "topics": [{"topicName": "x"}]}
    assert served.client.post("/external-task/fetchAndLock", json=no_lock).status_code == 400
    filtered = {
        "workerId": "w",
        "maxTasks": 1,
        "topics": [{"topicName": "x", "lockDuration": 1, "processVariables": {"a": 1}}],
    }
    assert served.client.post("/external-task/fetchAndLock", json=filtered).json() == []
    by_list = {
        **filtered,
        "topics": [{"topicName": "x", "lockDuration": 1, "processVariables": {"a": [1]}}],
    }
    assert served.client.post("/external-task/fetchAndLock", json=by_list).status_code == 400


def test_a_poll_times_out_with_an_empty_list(served: Served) -> None:
    served.engine.deploy(str(HERE / "payment.bpmn"))
    poll = Poll(served, "w", timeout_ms=300)
    poll.join(15)
    assert poll.status == 200 and poll.result == []
