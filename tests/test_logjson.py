"""Structured logs: ``JsonFormatter`` writes one JSON object per line, and every line the engine
logs about an instance, a job or an external task carries their ids; ``spillway --log-format
json`` logs that way on stderr."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import ProcessEngine, RetryPolicy
from engine.core import observe
from engine.core.logjson import JsonFormatter
from engine.testing import ManualClock
from tests.bpmnbuild import process, service
from tests.conftest import EngineFactory


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("spillway")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def about(lines: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [line for line in lines if text in line["message"]]


def test_the_formatter_writes_the_context_and_extra_fields() -> None:
    record = logging.LogRecord(
        "spillway.jobs", logging.WARNING, __file__, 1, "job %s", ("j1",), None
    )
    record.activity_id = "Charge"  # as extra= sets it: wins over the context
    record.amount = 30
    with observe.step(None, instance_id="i1", activity_id="Outer", attempt=2):
        line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING"
    assert line["logger"] == "spillway.jobs"
    assert line["message"] == "job j1"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert (line["instance_id"], line["activity_id"], line["attempt"]) == ("i1", "Charge", 2)
    assert line["amount"] == 30
    assert "job_id" not in line  # no step set it
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord(
            "spillway", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: bad" in line["exception"]
    assert "instance_id" not in line  # the step ended


def test_engine_lines_about_instances_and_jobs_carry_their_ids(
    make_engine: EngineFactory, clock: ManualClock, json_lines: io.StringIO
) -> None:
    eng = make_engine(retry_policy=RetryPolicy(retries=1, initial_delay=60.0, jitter=0.0))

    def broken(ctx: object) -> None:
        raise RuntimeError("the card service is down")

    eng.register_handler("charge", broken)
    eng.deploy(process("order", service("Charge", handler="charge")))
    inst = eng.start("order")
    clock.advance(60)
    assert eng.run_jobs() == 1
    (job,) = eng.jobs(inst.id)

    lines = parsed(json_lines)
    (first,) = about(lines, "retry 1 of 1")
    assert first["instance_id"] == inst.id
    assert first["process_key"] == "order"
    assert first["activity_id"] == "Charge"
    assert first["attempt"] == 1
    assert "job_id" not in first  # the synchronous call: no job yet
    (last,) = about(lines, "retries exhausted")
    assert last["instance_id"] == inst.id
    assert last["activity_id"] == "Charge"
    assert last["job_id"] == job.id
    assert last["job_kind"] == "async-continuation"
    assert last["attempt"] == 2
    assert last["level"] == "WARNING" and last["logger"] == "spillway.runtime"
    assert dict(observe.current_fields()) == {}  # the steps ended with the calls


def test_external_task_lines_carry_the_task_and_worker(
    eng: ProcessEngine, json_lines: io.StringIO
) -> None:
    eng.deploy(
        process("bill", service("B", extra='camunda:type="external" camunda:topic="billing"'))
    )
    inst = eng.start("bill")
    (task,) = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    eng.external_tasks.handle_failure(task.id, "w1", "printer on fire", retries=2, retry_timeout=0)
    (task,) = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    assert eng.external_tasks.complete(task.id, "w1")
    assert not eng.external_tasks.complete(task.id, "w1")  # a duplicate, logged

    lines = parsed(json_lines)
    (failed,) = about(lines, "printer on fire")
    assert failed["external_task_id"] == task.id
    assert failed["worker_id"] == "w1"
    assert failed["instance_id"] == inst.id
    assert failed["activity_id"] == "B"
    assert failed["topic"] == "billing"
    (duplicate,) = about(lines, "ignored")
    assert duplicate["external_task_id"] == task.id
    assert duplicate["worker_id"] == "w1"
    # Reports in a batch (as pools send them) leave no ids behind in the caller's context.
    inst = eng.start("bill")
    (task,) = eng.external_tasks.fetch_and_lock("w1", ["billing"])
    assert eng.external_tasks.report_all([("complete", task, "w1", {})]) == [True]
    assert dict(observe.current_fields()) == {}


APP = """
from engine import ProcessEngine, RetryPolicy

def make(url):
    eng = ProcessEngine(url, retry_policy=RetryPolicy(retries=1, initial_delay=0.05, jitter=0.0))
    def broken(ctx):
        raise RuntimeError("the card service is down")
    eng.register_handler("charge", broken)
    return eng
"""


def test_cli_log_format_json_writes_json_lines(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "jsonapp.py").write_text(APP)
    eng = ProcessEngine(db_url)
    eng.register_handler("charge", lambda ctx: None)
    eng.deploy(
        process("order", service("Charge", handler="charge", extra='camunda:asyncBefore="true"'))
    )
    inst = eng.start("order")
    eng.close()
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    cmd = [sys.executable, "-m", "engine.cli.main", "--log-format", "json", "--db", db_url]
    cmd += ["--app", "jsonapp:make", "worker", "--workers", "1", "--exit-when-idle"]
    cmd += ["--max-idle-wait", "0.1", "--cleanup-interval", "0"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert "stopped after" in done.stdout  # the command's own output stays text
    failures = [line for line in lines if line.get("job_id") and "failed" in line["message"]]
    assert {line["attempt"] for line in failures} == {1, 2}
    assert {line["instance_id"] for line in failures} == {inst.id}
    assert {line["activity_id"] for line in failures} == {"Charge"}
    assert any(line["logger"] == "spillway.executor" for line in lines)  # INFO lines too


def test_a_handlers_own_lines_carry_the_ids_it_runs_for(eng: ProcessEngine) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    mine = logging.getLogger("myapp.billing")
    mine.addHandler(handler)
    mine.setLevel(logging.INFO)
    mine.propagate = False
    try:
        eng.register_handler("charge", lambda ctx: mine.info("charging %s", ctx.business_key))
        eng.deploy(process("order", service("Charge", handler="charge")))
        inst = eng.start("order", business_key="A-17")
    finally:
        mine.removeHandler(handler)
    (line,) = parsed(stream)
    assert line["message"] == "charging A-17"
    assert line["logger"] == "myapp.billing"
    assert (line["instance_id"], line["activity_id"], line["attempt"]) == (inst.id, "Charge", 1)
    assert line["handler"] == "charge"
    assert line["process_key"] == "order"
