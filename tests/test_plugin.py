"""The pytest plugin as a user gets it: their test files run by pytest in a subprocess, where
the plugin comes from the installed ``pytest11`` entry point."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from engine import ProcessEngine
from tests.bpmnbuild import process, service, user
from tests.conftest import EXAMPLES, pg_url, reset_pg

pytest_plugins = ["pytester"]

DOCS = Path(__file__).parent.parent / "docs" / "testing.md"

# The designer's process: a service task computes a total, a person approves it.
APPROVAL = process("approval", service("Total", handler="total"), user("Approve"))

USER_TESTS = """
from engine.testing import assert_that

BPMN = {bpmn!r}


def deploy(engine, total):
    engine.register_handler("total", total)
    engine.deploy(BPMN)


def test_waits_for_approval(process_engine):
    deploy(process_engine, lambda ctx: {{"total": ctx.variables["amount"] * 2}})
    inst = process_engine.start("approval", {{"amount": 15}})
    assert_that(inst).is_active().is_waiting_at("Approve").has_variables(total=30)
    process_engine.complete_task(inst.id, "Approve", {{"ok": True}})
    assert_that(inst).is_completed().has_passed("Total", "Approve")


def test_clock_is_the_engines(process_engine, clock):
    assert process_engine.clock is clock
    before = clock.now()
    clock.advance(3600)
    assert (clock.now() - before).total_seconds() == 3600


def test_expects_the_wrong_wait(process_engine):
    deploy(process_engine, lambda ctx: {{"total": 30}})
    inst = process_engine.start("approval", {{"amount": 15}}, business_key="B-7")
    assert_that(inst).is_waiting_at("Ship")


def test_handler_returns_a_datetime(process_engine):
    from datetime import datetime, timezone

    deploy(process_engine, lambda ctx: {{"due": datetime(2030, 1, 5, tzinfo=timezone.utc)}})
    inst = process_engine.start("approval", {{"amount": 15}})
    assert_that(inst).is_waiting_at("Approve")
"""


def write_user_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_designer=USER_TESTS.format(bpmn=APPROVAL))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # -W error: the user's run must not leak warnings (unclosed engines, sockets) either.
    return pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider", *args)


def failure_of(result: pytest.RunResult, test: str) -> str:
    """The report pytest printed for one failed test."""
    out = result.stdout.str()
    start = out.index(f"_ {test} _")
    end = out.find("\n___", start + 1)
    summary = out.find("short test summary", start)
    stops = [i for i in (end, summary) if i != -1]
    return out[start : min(stops)] if stops else out[start:]


def test_the_plugin_is_found_and_its_tests_run(pytester: pytest.Pytester) -> None:
    write_user_tests(pytester)
    result = run(pytester, "-k", "approval or clock")
    result.stdout.fnmatch_lines(["plugins:*spillway-bpmn*"])
    result.assert_outcomes(passed=2, deselected=2)


def test_a_failing_assertion_shows_waits_variables_and_history(
    pytester: pytest.Pytester,
) -> None:
    write_user_tests(pytester)
    result = run(pytester, "-k", "wrong_wait")
    result.assert_outcomes(failed=1)
    report = failure_of(result, "test_expects_the_wrong_wait")
    # pytest shows the user's line, then the message; the plugin's frames are hidden.
    assert '>       assert_that(inst).is_waiting_at("Ship")' in report
    assert "engine/testing/assertions.py" not in report
    lines = [line[8:] for line in report.splitlines() if line.startswith("E ")]
    assert re.fullmatch(
        r"AssertionError: assert_that\('\w+'\)\.is_waiting_at\('Ship'\): it does not wait at "
        r"\['Ship'\]; it waits at \['Approve'\]",
        lines[0],
    )
    # Where it could have waited instead, then the instance with the path it took.
    assert lines[1:3] == [
        "'Ship' is no flow node of process 'approval'",
        "nearest wait states it could have reached instead: none",
    ]
    body = "\n".join(lines[3:])
    assert re.search(r"instance \w+ of 'approval' v1, business key 'B-7': state 'active'", body)
    assert "waiting at: Approve\n" in body
    assert (
        "path (virtual time):\n  2030-01-01 09:00:00  StartEvent_1 > Total > Approve (waiting)\n"
    ) in body
    assert "variables:\n  amount = 15\n  total = 30\n" in body
    assert "history (oldest first):\n  2030-01-01 09:00:00  StartEvent_1 (startEvent)" in body
    assert "  2030-01-01 09:00:00  Total (serviceTask)  completed\n" in body
    assert "  2030-01-01 09:00:00  Approve (userTask)  running\n" in body
    assert "open jobs: none\nopen incidents: none" in body


def test_a_variable_the_database_cannot_hold_fails_the_designers_test(
    pytester: pytest.Pytester,
) -> None:
    """The engine in the fixture stores every step, so a handler result that would break in
    production (a datetime is not JSON) breaks the test too, and says why."""
    write_user_tests(pytester)
    result = run(pytester, "-k", "datetime")
    result.assert_outcomes(failed=1)
    report = failure_of(result, "test_handler_returns_a_datetime")
    assert "it does not wait at ['Approve']; it waits at ['Total']" in report
    problem = "variable 'due' is a datetime, which is not JSON-compatible"
    assert re.search(
        rf"E\s+2030-01-01 09:00:00  Total \(serviceTask\)  failed: .*{problem}", report
    )
    assert re.search(rf"E\s+async-continuation at Total, .*last error: .*{problem}", report)


def test_spillway_db_option_uses_that_database_emptied_per_test(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    db = tmp_path / "designer.db"
    pytester.makepyfile(
        test_db=f"""
        import pytest

        BPMN = {APPROVAL!r}

        @pytest.mark.parametrize("n", [1, 2])
        def test_starts_alone(process_engine, n):
            assert str(process_engine.store.url) == "sqlite:///{db}"
            assert process_engine.instances() == []  # nothing left from the test before
            process_engine.register_handler("total", lambda ctx: {{"n": n}})
            process_engine.deploy(BPMN)
            process_engine.start("approval", business_key=f"run-{{n}}")
        """
    )
    run(pytester, f"--spillway-db=sqlite:///{db}").assert_outcomes(passed=2)
    with ProcessEngine(f"sqlite:///{db}") as eng:
        assert [i.business_key for i in eng.instances()] == ["run-2"]


@pytest.mark.postgres
def test_spillway_test_db_environment_selects_postgresql(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_url()
    reset_pg(url)
    monkeypatch.setenv("SPILLWAY_TEST_DB", url)
    pytester.makepyfile(
        test_pg=f"""
        from engine.testing import assert_that

        def test_on_postgresql(process_engine):
            assert process_engine.store.dialect == "postgresql"
            process_engine.register_handler("total", lambda ctx: {{"total": 1}})
            process_engine.deploy({APPROVAL!r})
            inst = process_engine.start("approval")
            assert_that(inst).is_waiting_at("Approve").has_variables(total=1)
        """
    )
    run(pytester).assert_outcomes(passed=1)


def python_blocks(markdown: str) -> list[str]:
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", markdown, re.S)]


def test_the_examples_in_docs_testing_md_pass(pytester: pytest.Pytester) -> None:
    """docs/testing.md's Python blocks, in order, make one test module that must pass."""
    blocks = python_blocks(DOCS.read_text())
    assert len(blocks) >= 6
    shutil.copytree(EXAMPLES, pytester.path / "processes")
    pytester.makepyfile(test_docs="\n\n".join(blocks))
    result = run(pytester)
    tests = len(re.findall(r"^def test_", "\n".join(blocks), re.M))
    result.assert_outcomes(passed=tests)
