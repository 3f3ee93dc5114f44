"""Real Camunda 7 external-task clients, unchanged, against ``create_app`` under uvicorn: the
Python client (camunda-external-task-client-python3) and the JavaScript client
(camunda-external-task-client-js, installed by ``.ci/run`` into SPILLWAY_JS_CLIENT_DIR).

Each worker completes the ExampleProcess's copies and the Payment process's charges, reports a
failure with retries (the task comes back and completes), and throws a BPMN error that the
boundary event catches."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HERE, PASSWORD, USER, Served, wait_for

from engine import ProcessEngine

EXAMPLES = HERE.parent.parent / "processes"
REQUIRE = os.environ.get("SPILLWAY_REQUIRE_SERVICES") == "1"
JS_DIR = os.environ.get("SPILLWAY_JS_CLIENT_DIR", "")


def _deploy(served: Served) -> None:
    for path in (HERE / "payment.bpmn", EXAMPLES / "example_process.bpmn"):
        with path.open("rb") as fh:
            response = served.client.post(
                "/deployment/create",
                data={"deployment-name": path.stem, "enable-duplicate-filtering": "true"},
                files={"upload": (path.name, fh, "application/octet-stream")},
            )
        assert response.status_code == 200, response.text


def _start(served: Served, key: str, variables: dict[str, object], business_key: str) -> str:
    typed = {name: {"value": value} for name, value in variables.items()}
    response = served.client.post(
        f"/process-definition/key/{key}/start",
        json={"variables": typed, "businessKey": business_key},
    )
    assert response.status_code == 200, response.text
    instance_id: str = response.json()["id"]
    return instance_id


def _scenario(served: Served, worker: subprocess.Popen[str], by: str) -> None:
    eng: ProcessEngine = served.engine
    files = [f"in/f{n}.dat" for n in range(6)]
    copy_id = _start(served, "ExampleProcess", {"files": files}, "copies")
    ok = _start(served, "Payment", {"amount": 30}, "ok")
    flaky = _start(served, "Payment", {"amount": 40, "flaky": True}, "flaky")
    declined = _start(served, "Payment", {"amount": 5000}, "declined")

    def ended() -> bool:
        if worker.poll() is not None:
            raise AssertionError(f"worker exited: {worker.stdout.read() if worker.stdout else ''}")
        return all(eng.get_instance(i).state == "completed" for i in (copy_id, ok, flaky, declined))

    wait_for(ended, 60, "the worker to finish every instance")
    copies = eng.get_instance(copy_id).variables["copies"]
    assert sorted(c["to"] for c in copies) == [f.replace("in/", "archive/") for f in files]
    paid = eng.get_instance(ok).variables
    assert (paid["charged"], paid["by"], paid["gateway"]) == (30, by, "test")
    assert [h.activity_id for h in eng.history(ok)][-1] == "Paid"
    # The failure was reported with retries: the task came back and completed.
    assert eng.get_instance(flaky).variables["charged"] == 40
    outcomes = [h.outcome for h in eng.history(flaky) if h.activity_id == "Charge"]
    assert outcomes[-1] == "completed"
    # The BPMN error took the boundary event.
    passed = [h.activity_id for h in eng.history(declined)]
    assert "Declined" in passed and "NotPaid" in passed and "Paid" not in passed
    assert eng.get_instance(declined).variables["declined"] is True
    assert eng.external_tasks.list() == []


@pytest.fixture
def deployed(served: Served) -> Served:
    _deploy(served)
    return served


def _run(cmd: list[str], cwd: str | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def python_worker(deployed: Served) -> Iterator[subprocess.Popen[str]]:
    script = str(HERE / "py_worker.py")
    yield from _run([sys.executable, script, deployed.base, USER, PASSWORD])


def test_python_client_worker_runs_the_processes(
    deployed: Served, python_worker: subprocess.Popen[str]
) -> None:
    _scenario(deployed, python_worker, "python")


def _js_dir() -> Path:
    node = shutil.which("node")
    package = Path(JS_DIR) / "node_modules" / "camunda-external-task-client-js"
    reason = ""
    if node is None:
        reason = "Node.js is not installed"
    elif not JS_DIR or not package.is_dir():
        reason = (
            "camunda-external-task-client-js is not installed; set SPILLWAY_JS_CLIENT_DIR to a "
            "folder where `npm install camunda-external-task-client-js@3.1.0` ran (.ci/run does)"
        )
    if reason:
        if REQUIRE:
            pytest.fail(reason + " (SPILLWAY_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return Path(JS_DIR)


@pytest.fixture
def js_worker(deployed: Served) -> Iterator[subprocess.Popen[str]]:
    folder = _js_dir()
    # An ES module resolves packages from its own folder upwards: run a copy placed there.
    script = folder / "spillway_js_worker.mjs"
    shutil.copyfile(HERE / "js_worker.mjs", script)
    yield from _run(["node", str(script), deployed.base, USER, PASSWORD], cwd=str(folder))


def test_javascript_client_worker_runs_the_processes(
    deployed: Served, js_worker: subprocess.Popen[str]
) -> None:
    _scenario(deployed, js_worker, "js")
