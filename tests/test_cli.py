"""The ``spillway`` command line, run in-process against a SQLite file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.cli.main import main
from tests.bpmnbuild import process, service, user


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPILLWAY_DB", raising=False)
    monkeypatch.delenv("SPILLWAY_APP", raising=False)
    (tmp_path / "flow.bpmn").write_bytes(process("flow", service("A", "stamp"), user("Review")))
    (tmp_path / "myapp.py").write_text(
        textwrap.dedent(
            """
            from engine import ProcessEngine

            def make(url):
                eng = ProcessEngine(url)
                eng.register_handler("stamp", lambda ctx: {"stamped": ctx.variables["n"] + 1})
                return eng
            """
        )
    )
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--db", "sqlite:///cli.db", "--app", "myapp:make", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_deploy_start_show_complete(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "deploy", "flow.bpmn")
    assert code == 0 and "flow v1" in out
    code, out, _ = run(capsys, "deploy", "flow.bpmn")
    assert "unchanged" in out
    code, out, _ = run(
        capsys, "start", "flow", "--var", "n:=41", "--var", "who=ann", "--business-key", "B-1"
    )
    assert code == 0
    assert "waiting at Review" in out and '"stamped": 42' in out and '"who": "ann"' in out
    instance_id = out.split()[1]
    code, out, _ = run(capsys, "instances", "--state", "active")
    assert instance_id in out and "B-1" in out
    code, out, _ = run(capsys, "show", instance_id)
    assert "history" in out and "serviceTask" in out and "Review" in out
    code, out, _ = run(capsys, "complete", instance_id, "Review", "--var", "ok:=true")
    assert code == 0 and "state      completed" in out


def test_user_errors_are_one_line_without_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, fragment in [
        (("start", "nope"), "no process deployed with key 'nope'"),
        (("show", "missing-id"), "no process instance"),
        (("deploy", "missing.bpmn"), "no such file"),
        (("start", "flow", "--var", "novalue"), "--var expects name=value"),
        (("retry", "nothing"), "no job or incident"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2
        assert err.count("\n") == 1 and fragment in err and "Traceback" not in err


def test_bad_app_reference(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", "sqlite:///cli.db", "--app", "nomodule:x", "instances"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert main(["--db", "sqlite:///cli.db", "--app", "myapp:absent", "instances"]) == 2
    assert "has no attribute" in capsys.readouterr().err


def test_demo_runs_every_example_path(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli.main",
            "--db",
            f"sqlite:///{tmp_path / 'demo.db'}",
            "demo",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "8 orders: 8 completed; open jobs 0, incidents 0" in result.stdout
    assert "ApproveOrder" in result.stdout and "NotifyDeclined" in result.stdout
    assert "Task_Charge failed: TimeoutError > Task_Charge (retry 1)" in result.stdout
    assert "card 41110 ends in 0: declined by the issuer" in result.stdout  # why that path
    assert "waiting at -" not in result.stdout
    assert "invoice INV-1 total=100.0 approved=True -> completed" in result.stdout
    assert "onboarding E1 login=ada.lovelace -> completed" in result.stdout
