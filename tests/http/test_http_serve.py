"""``spillway serve`` as a process: answers on its port with the job executor running, and
shuts down gracefully on SIGTERM (pending long polls answer, the process exits 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from conftest import AUTH, HERE, free_port, wait_for

from engine import ProcessEngine

APP = """
from engine import ProcessEngine

def make(url):
    eng = ProcessEngine(url)
    eng.register_handler("double", lambda ctx: {"n": ctx.variables["n"] * 2})
    return eng
"""

DOUBLE = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">'
    '<bpmn:process id="Double" isExecutable="true"><bpmn:startEvent id="s"/>'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="T"/>'
    '<bpmn:serviceTask id="T" camunda:class="double" camunda:asyncBefore="true"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="T" targetRef="e"/><bpmn:endEvent id="e"/>'
    "</bpmn:process></bpmn:definitions>"
)


def test_serve_runs_api_and_executor_and_stops_gracefully(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP)
    port = free_port()
    env = {**os.environ, "SPILLWAY_AUTH": f"{AUTH[0]}:{AUTH[1]}", "PYTHONPATH": str(tmp_path)}
    cmd = [
        sys.executable,
        "-m",
        "engine.cli.main",
        "--db",
        db_url,
        "--app",
        "myapp:make",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--stop-timeout",
        "10",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}/engine-rest"
    try:

        def up() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                return httpx.get(f"{base}/version", auth=AUTH).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 30, "spillway serve to answer")
        assert httpx.get(f"{base}/version").status_code == 401
        files = {
            "f": ("double.bpmn", DOUBLE.encode(), "text/xml"),
            "g": ("payment.bpmn", (HERE / "payment.bpmn").read_bytes(), "text/xml"),
        }
        assert httpx.post(f"{base}/deployment/create", files=files, auth=AUTH).status_code == 200
        started = httpx.post(
            f"{base}/process-definition/key/Double/start",
            auth=AUTH,
            json={"variables": {"n": {"value": 21}}},
        ).json()

        # The async-before job runs in the server's executor.
        def doubled() -> bool:
            got = httpx.get(f"{base}/process-instance/{started['id']}/variables", auth=AUTH)
            return got.json().get("n", {}).get("value") == 42

        wait_for(doubled, 30, "the job executor")

        answers: list[int] = []

        def long_poll() -> None:
            body = {
                "workerId": "w",
                "maxTasks": 1,
                "asyncResponseTimeout": 60_000,
                "topics": [{"topicName": "charge", "lockDuration": 1000}],
            }
            r = httpx.post(f"{base}/external-task/fetchAndLock", json=body, auth=AUTH, timeout=90)
            answers.append(len(r.json()))

        poller = threading.Thread(target=long_poll, daemon=True)
        poller.start()
        time.sleep(0.5)  # the poll is waiting
        begun = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        poller.join(10)
        assert answers == [0]  # answered [] at shutdown, well before its 60 s
        assert time.monotonic() - begun < 30
        out = proc.stdout.read() if proc.stdout else ""
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    eng = ProcessEngine(db_url)
    try:
        assert eng.get_instance(started["id"]).state == "completed"
    finally:
        eng.close()
