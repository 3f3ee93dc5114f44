"""The operator's sub-commands, run in-process against a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.cli.main import main
from tests.bpmnbuild import process, user

DB = "sqlite:///ops.db"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPILLWAY_DB", raising=False)
    monkeypatch.delenv("SPILLWAY_APP", raising=False)
    (tmp_path / "v1.bpmn").write_bytes(
        process("order", '<bpmn:userTask id="Approve" camunda:candidateGroups="sales" />')
    )
    (tmp_path / "v2.bpmn").write_bytes(process("order", user("Review"), user("Ship")))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--db", DB, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def started(workdir: Path, n: int = 1) -> list[str]:
    eng = ProcessEngine(DB)
    eng.deploy(workdir / "v1.bpmn")
    ids = [eng.start("order", {"amount": 5}).id for _ in range(n)]
    eng.close()
    return ids


def test_tasks_claim_and_set_var(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [iid] = started(workdir)
    tasks = run_json(capsys, "tasks", "--candidate-user", "mary", "--candidate-group", "sales")
    assert isinstance(tasks, list) and [t["instance_id"] for t in tasks] == [iid]
    task_id = tasks[0]["id"]
    code, out, _ = run(capsys, "tasks", "--key", "order")
    assert code == 0 and task_id in out and "Approve" in out
    claimed = run_json(capsys, "claim", task_id, "mary")
    assert isinstance(claimed, dict) and claimed["assignee"] == "mary"
    code, _, err = run(capsys, "claim", task_id, "pete")
    assert code == 2 and err.count("\n") == 1 and "claimed by 'mary'" in err
    assert run_json(capsys, "tasks", "--assignee", "mary")[0]["id"] == task_id  # type: ignore[index]
    inst = run_json(capsys, "set-var", iid, "amount=45", "note=hello", "--user", "ops")
    assert inst["variables"] == {"amount": 45, "note": "hello"}  # type: ignore[index]
    code, out, _ = run(capsys, "set-var", iid, "--remove", "note")
    assert code == 0 and '"note"' not in out
    code, _, err = run(capsys, "set-var", iid, "oops")
    assert code == 2 and "name=value" in err and err.count("\n") == 1
    code, _, err = run(capsys, "unclaim", task_id)
    assert code == 0


def test_suspend_activate_cancel(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [iid] = started(workdir)
    assert run_json(capsys, "suspend", iid)["suspended"] is True  # type: ignore[index]
    code, _, err = run(capsys, "set-var", iid, "a=1")
    assert code == 2 and "suspended" in err
    code, out, _ = run(capsys, "activate", iid)
    assert code == 0 and "suspended" not in out
    done = run_json(capsys, "cancel", iid, "--reason", "duplicate", "--user", "ops")
    assert done["state"] == "terminated"  # type: ignore[index]
    code, _, err = run(capsys, "cancel", iid)
    assert code == 2 and "has ended" in err and err.count("\n") == 1
    code, _, err = run(capsys, "suspend", "nope")
    assert code == 2 and "no process instance" in err


def test_migrate_modify_cleanup(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = started(workdir, 2)
    eng = ProcessEngine(DB)
    eng.deploy(workdir / "v2.bpmn")
    eng.close()
    code, _, err = run(capsys, "migrate", *ids, "--to-version", "2")
    assert code == 2 and "'Approve'" in err and err.count("\n") == 1
    code, _, err = run(capsys, "migrate", *ids, "--to-version", "2", "--map", "Approve")
    assert code == 2 and "Old=New" in err
    moved = run_json(capsys, "migrate", *ids, "--to-version", "2", "--map", "Approve=Review")
    assert [m["version"] for m in moved] == [2, 2]  # type: ignore[union-attr]
    inst = run_json(capsys, "modify", ids[0], "--start-before", "Ship", "--cancel", "Review")
    assert inst["waiting_at"] == ["Ship"]  # type: ignore[index]
    code, _, err = run(capsys, "modify", ids[0], "--cancel", "Nope")
    assert code == 2 and "'Nope'" in err
    code, out, _ = run(capsys, "cleanup")
    assert code == 0 and "0 ended instances removed" in out
    assert run_json(capsys, "cleanup") == {"removed": 0}


def test_bad_version_is_one_usage_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--db", DB, "migrate", "x", "--to-version", "two"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "not a version number: 'two'" in err


def test_worker_runs_history_cleanup(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "zero.bpmn").write_bytes(
        process("zero", user("A"), process_attrs='camunda:historyTimeToLive="0"')
    )
    eng = ProcessEngine(DB)
    eng.deploy(workdir / "zero.bpmn")
    ended = eng.start("zero")
    eng.complete_task(ended.id, "A")
    eng.close()
    code, _, err = run(capsys, "worker", "--exit-when-idle", "--workers", "1")
    assert code == 0, err
    eng = ProcessEngine(DB)
    assert eng.instances(process_key="zero") == []
    eng.close()
