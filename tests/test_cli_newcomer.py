"""A newcomer's first hour: the README's shell block runs as written, and the command line
never misleads (typed variables, the database used, failures, one-line errors, listings)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.cli.main import main
from tests.bpmnbuild import process, service, user

ROOT = Path(__file__).resolve().parent.parent
BIN = str(Path(sys.executable).parent)


def readme_shell_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## From the shell") :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README.md has no bash block under 'From the shell'"
    return match.group(1)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


def test_readme_shell_block_runs_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "processes", tmp_path / "processes")
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", readme_shell_block()],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "spillway: error" not in result.stderr and "Traceback" not in result.stderr
    assert "waiting at ApproveOrder" in result.stdout
    assert result.stdout.rstrip().endswith("completed")  # the JSON of show, parsed
    assert (tmp_path / "spillway.db").exists()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("SPILLWAY_DB", "SPILLWAY_APP", "SPILLWAY_WORKERS", "SPILLWAY_POOLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "flow.bpmn").write_bytes(
        process("flow", service("Task_Charge", "charge"), user("Review"))
    )
    (tmp_path / "cliapp.py").write_text(
        textwrap.dedent(
            """
            from engine import ProcessEngine

            def charge(ctx):
                if ctx.variables.get("fail"):
                    raise ConnectionError("gateway down")
                return {"card_type": type(ctx.variables.get("card")).__name__}

            def make(url=None):
                eng = ProcessEngine(url)
                eng.register_handler("charge", charge)
                return eng

            fixed = make("sqlite:///fixed.db")
            """
        )
    )
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


APP = ("--db", "sqlite:///cli.db", "--app", "cliapp:make")


def started_id(out: str) -> str:
    return out.split()[1]


def test_var_strings_by_default_json_when_typed(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, *APP, "deploy", "flow.bpmn")[0] == 0
    code, out, _ = cli(
        capsys,
        *APP,
        *("start", "flow", "--var", "card=4111", "--var", "amount:=5000"),
        *("--var", "tags:=[1, 2]", "--var", "note=a=b"),
    )
    assert code == 0
    variables = ProcessEngine("sqlite:///cli.db").get_instance(started_id(out)).variables
    assert variables["card"] == "4111" and variables["card_type"] == "str"
    assert variables["amount"] == 5000 and variables["tags"] == [1, 2]
    assert variables["note"] == "a=b"
    code, _, err = cli(capsys, *APP, "start", "flow", "--var", "amount:=50OO")
    assert code == 2 and "--var amount: not a JSON value" in err and err.count("\n") == 1


def test_deploy_without_app_says_how_to_register_handlers(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "--db", "sqlite:///cli.db", "deploy", "flow.bpmn")
    assert code == 2 and err.count("\n") == 1
    assert "'charge', which is not registered" in err and "no --app given" in err


def test_db_wins_over_a_callable_app_and_conflicts_are_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = cli(capsys, "--db", "sqlite:///chosen.db", "--app", "cliapp:make", "instances")
    assert code == 0 and (workdir / "chosen.db").exists()
    assert not (workdir / "spillway.db").exists()
    code, _, err = cli(capsys, "--db", "sqlite:///other.db", "--app", "cliapp:fixed", "instances")
    assert code == 2 and err.count("\n") == 1
    assert "sqlite:///fixed.db" in err and "sqlite:///other.db" in err
    assert not (workdir / "other.db").exists()
    assert cli(capsys, "--db", "sqlite:///fixed.db", "--app", "cliapp:fixed", "instances")[0] == 0


def test_a_failure_is_one_line_and_exit_zero(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, *APP, "deploy", "flow.bpmn")
    code, out, err = cli(capsys, *APP, "start", "flow", "--var", "fail:=true")
    assert code == 0 and err == ""
    assert re.search(
        r"^Task_Charge failed: ConnectionError: gateway down; retry 1 of 3 due at \S+$",
        out,
        re.M,
    )
    assert "Traceback" not in out
    # Without --app no handler is registered here: the line says so.
    code, out, _ = cli(capsys, "--db", "sqlite:///cli.db", "start", "flow")
    assert code == 0
    assert "Task_Charge failed: NotFound: no handler registered under 'charge'" in out
    assert "no --app given" in out
    # A worker without handlers refuses; the retry stays for a worker that has the handler.
    before = ProcessEngine("sqlite:///cli.db").jobs()
    code, _, err = cli(capsys, "--db", "sqlite:///cli.db", "worker", "--exit-when-idle")
    assert code == 2 and "no handler is registered" in err
    assert ProcessEngine("sqlite:///cli.db").jobs() == before


def test_debug_shows_no_spiffworkflow_debug_lines(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, *APP, "deploy", "flow.bpmn")
    code, out, err = cli(capsys, "--debug", *APP, "start", "flow", "--var", "fail:=true")
    assert code == 0 and "retry 1 of 3" in out
    assert "spiff" not in err.lower()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("--db", "nosuchdialect://x/y", "instances"), "unknown database kind 'nosuchdialect'"),
        (("--db", "foo://x", "instances"), "unknown database kind 'foo'"),
        (("--db", "not a url", "instances"), "is not a database URL"),
        (
            ("--db", "postgresql+psycopg://postgres@127.0.0.1:1/x", "instances"),
            "database error",
        ),
        (
            ("--db", "sqlite:///cli.db", "--app", "cliapp:make", "worker", "--workers", "0"),
            "--workers",
        ),
        (
            ("--db", "sqlite:///cli.db", "--app", "cliapp:make", "worker", "--lock-duration", "-1"),
            "--lock-duration",
        ),
        ((*APP, "start", "flow", "--var", "x:=" + "7" * 5000), "more than 4300 digits"),
        ((*APP, "start", "flow", "--var", "x:=" + "[" * 30000), "nested too deeply"),
        ((*APP, "start", "flow", "--business-key", "bk\udcff\udcfe"), "--business-key"),
        ((*APP, "retry", "x", "--retries", "0"), "--retries"),
        ((*APP, "nosuchcommand"), "invalid choice"),
        ((*APP, "show"), "the following arguments are required: id"),
    ],
)
def test_every_user_error_is_one_line_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], fragment: str
) -> None:
    cli(capsys, *APP, "deploy", "flow.bpmn")
    code, _, err = cli(capsys, *argv)
    assert code == 2, err
    assert err.startswith("spillway: error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err


def test_a_closed_pipe_ends_quietly(workdir: Path) -> None:
    with ProcessEngine("sqlite:///cli.db") as eng:
        eng.deploy(process("w", user("Review")))
        first = eng.start("w", {"blob": "x" * 300_000})  # more than a pipe buffer holds
        for _ in range(20):
            eng.start("w", {"blob": "y" * 20_000})
    cmd = [sys.executable, "-m", "engine.cli.main", "--db", "sqlite:///cli.db"]
    for args in (["show", first.id], ["instances"]):
        with subprocess.Popen(
            [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.read(10)
            proc.stdout.close()  # as `| head -c 10` does
            err = proc.stderr.read().decode()
            proc.wait(timeout=60)
        assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_json_and_ids_for_listings(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, *APP, "deploy", "flow.bpmn")
    _, out, _ = cli(capsys, *APP, "start", "flow", "--var", "fail:=true", "-q")
    iid = out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", iid)
    _, out, _ = cli(capsys, *APP, "instances", "--json")
    [listed] = json.loads(out)
    assert listed["id"] == iid and listed["waiting_at"] == ["Task_Charge"]
    _, out, _ = cli(capsys, *APP, "jobs", "--json")
    [job] = json.loads(out)
    assert job["activity_id"] == "Task_Charge" and job["attempts"] == 1
    _, out, _ = cli(capsys, *APP, "jobs", "-q")
    assert out.split() == [job["id"]]
    _, out, _ = cli(capsys, *APP, "incidents", "--json")
    assert json.loads(out) == []
    _, out, _ = cli(capsys, *APP, "show", iid, "--json")
    shown = json.loads(out)
    assert shown["instance"]["id"] == iid and shown["jobs"][0]["id"] == job["id"]
    assert [h["activity_id"] for h in shown["history"]][:2] == ["StartEvent_1", "Task_Charge"]
    code, out, _ = cli(capsys, *APP, "retry", job["id"])
    assert code == 0 and out.strip().endswith("with 1 retry")


def test_message_and_external_commands(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ext = '<bpmn:serviceTask id="Copy" camunda:type="external" camunda:topic="copy" />'
    catch = (
        '<bpmn:intermediateCatchEvent id="Paid"><bpmn:messageEventDefinition messageRef="m" />'
        "</bpmn:intermediateCatchEvent>"
    )
    (workdir / "x.bpmn").write_bytes(
        process("x", ext, catch, definitions='<bpmn:message id="m" name="Paid" />')
    )
    cli(capsys, *APP, "deploy", "x.bpmn")
    _, out, _ = cli(capsys, *APP, "start", "x", "--var", "order=A-1", "-q")
    iid = out.strip()
    code, out, _ = cli(capsys, *APP, "external", "--by-topic")
    assert code == 0 and re.search(r"^copy\s+1\s+0\s+0\s+1\s*$", out, re.M)
    _, out, _ = cli(capsys, *APP, "external", "--json")
    [task] = json.loads(out)
    assert task["activity_id"] == "Copy" and task["instance_id"] == iid
    code, out, _ = cli(capsys, *APP, "external", "complete", task["id"], "--var", "n:=3")
    assert code == 0 and "waiting at Paid" in out
    code, _, err = cli(capsys, *APP, "external", "complete", task["id"])
    assert code == 2 and "no open external task" in err
    code, out, _ = cli(
        capsys, *APP, "message", "Paid", "--correlate", "order=A-1", "--var", "paid:=true"
    )
    assert code == 0 and "state      completed" in out and '"paid": true' in out
    assert '"n": 3' in out
    code, _, err = cli(capsys, *APP, "message", "Paid", "--correlate", "order=A-1")
    assert code == 2 and "Paid" in err


def test_conformance_reads_bpmn20_xml(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = workdir / "models"
    folder.mkdir()
    (folder / "one.bpmn20.xml").write_bytes(process("one", user("Look")))
    code, out, _ = cli(capsys, "conformance", str(folder))
    assert code == 0 and "one.bpmn20.xml" in out and "1 deployed" in out
