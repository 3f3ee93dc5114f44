"""``spillway worker --metrics-port``: a worker without the API serves ``/metrics`` on a real
port while it runs, counting the jobs it ran, and closes the port when it stops."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from engine import ProcessEngine
from tests.bpmnbuild import process, service

APP = """
from engine import ProcessEngine

def make(url):
    eng = ProcessEngine(url)
    eng.register_handler("double", lambda ctx: {"n": ctx.variables["n"] * 2})
    return eng
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_worker_serves_metrics_on_its_port(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "workerapp.py").write_text(APP)
    eng = ProcessEngine(db_url)
    eng.register_handler("double", lambda ctx: None)
    deferred = 'camunda:asyncBefore="true"'
    eng.deploy(process("Double", service("T", handler="double", extra=deferred)))
    ids = [eng.start("Double", variables={"n": n}).id for n in range(3)]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    cmd = [sys.executable, "-m", "engine.cli.main", "--db", db_url, "--app", "workerapp:make"]
    cmd += ["worker", "--workers", "2", "--metrics-port", str(port), "--cleanup-interval", "0"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}/metrics"
    executed = (
        "spillway_jobs_executed_total",
        frozenset({("kind", "async-continuation"), ("handler", "double")}),
    )
    completed = (
        "spillway_process_instances_completed_total",
        frozenset({("process_key", "Double")}),
    )
    try:
        deadline = time.monotonic() + 60
        seen: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        while seen.get(executed) != 3:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, f"the worker's metrics never showed 3 jobs: {seen}"
            with contextlib.suppress(httpx.TransportError):
                seen = samples(url)
            time.sleep(0.1)
        assert seen[completed] == 3
        assert seen[("spillway_jobs_due", frozenset())] == 0
        assert [eng.get_instance(i).variables["n"] for i in ids] == [0, 2, 4]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        out = proc.stdout.read() if proc.stdout else ""
        assert f"worker metrics: http://127.0.0.1:{port}/metrics" in out
        assert "stopped after 3 jobs" in out
        try:
            httpx.get(url, timeout=2)
        except httpx.TransportError:
            pass  # the port is closed
        else:
            raise AssertionError("the metrics port still answers after the worker stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        eng.close()


def test_worker_metrics_port_in_use_is_a_one_line_error(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "workerapp.py").write_text(APP)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(tmp_path)}
        cmd = [sys.executable, "-m", "engine.cli.main", "--db", db_url, "--app", "workerapp:make"]
        cmd += ["worker", "--metrics-port", str(port), "--cleanup-interval", "0"]
        done = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert done.stderr.startswith("spillway: error: worker: cannot serve metrics on 127.0.0.1:")
    assert len(done.stderr.strip().splitlines()) == 1
