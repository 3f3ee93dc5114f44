"""``pytest --spillway-coverage`` as a user runs it: a suite of their own in a subprocess, with
and without pytest-xdist, on SQLite and PostgreSQL, with the fixtures' engines and engines the
tests make themselves."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, pg_url, reset_pg
from tests.test_plugin import run

pytest_plugins = ["pytester"]

# The designer's suite for order.bpmn: small orders, a declined card, and the approval branch
# only when ``APPROVAL`` is set. Without it the suite misses the gateway's "> 1000" branch.
SUITE = """
import os

import pytest

from engine import ProcessEngine
from engine.testing import ManualClock, assert_that, use_engine
from processes import order_handlers


@pytest.fixture
def order(process_engine):
    order_handlers.register(process_engine)
    process_engine.deploy("processes/order.bpmn")
    return process_engine


def test_small_order(order):
    inst = order.start("order", {"amount": 30, "card": "4111"})
    assert_that(inst).is_completed()


def test_declined_card(order):
    inst = order.start("order", {"amount": 30, "card": "4110"})
    assert_that(inst).is_completed().has_passed("Task_NotifyDeclined")


@pytest.mark.skipif(not os.environ.get("APPROVAL"), reason="approval branch not tested")
def test_large_order_on_an_engine_of_my_own(tmp_path):
    url = os.environ.get("MY_ENGINE_DB") or f"sqlite:///{tmp_path / 'mine.db'}"
    with ProcessEngine(url, clock=ManualClock()) as eng, use_engine(eng):
        order_handlers.register(eng)
        eng.deploy("processes/order.bpmn")
        inst = eng.start("order", {"amount": 5000, "card": "4111"})
        eng.complete_task(inst.id, "ApproveOrder")
        assert_that(inst).is_completed()
"""

MISSED = ["ApproveOrder", "Flow_Large", "Flow_Approved"]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(EXAMPLES, pytester.path / "processes")
    pytester.makepyfile(test_order=SUITE)
    return pytester


def coverage_section(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "spillway process coverage" in line)
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^(=+ |-+ )", lines[i])),
        len(lines),
    )
    return lines[start + 1 : end]


def test_a_suite_that_misses_a_gateway_branch_is_told_so(suite: pytest.Pytester) -> None:
    result = run(suite, "--spillway-coverage")
    result.assert_outcomes(passed=2, skipped=1)
    assert coverage_section(result) == [
        "1 process: 18 of 21 flow nodes and sequence flows taken (85.7%)",
        "order: nodes 10/11 (90.9%), flows 8/10 (80.0%), 2 instances",
        "  nodes never taken: ApproveOrder",
        "  flows never taken: Flow_Large, Flow_Approved",
        "report: spillway-coverage/index.html",
    ]
    report = suite.path / "spillway-coverage"
    page = (report / "order.html").read_text()
    data = json.loads(
        re.search(r'id="coverage">(.*?)</script>', page, re.S)  # type: ignore[union-attr]
        .group(1)
        .replace("<\\/", "</")
    )
    assert data["missed"] == MISSED
    assert data["xml"] == (EXAMPLES / "order.bpmn").read_text()
    assert (report / "assets" / "bpmn-navigated-viewer.production.min.js").exists()
    assert "85.7%" in (report / "index.html").read_text()


def test_an_engine_a_test_made_itself_counts_too(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVAL", "1")
    result = run(suite, "--spillway-coverage", "--spillway-coverage-report=out/cov")
    result.assert_outcomes(passed=3)
    assert coverage_section(result)[:2] == [
        "1 process: 21 of 21 flow nodes and sequence flows taken (100.0%)",
        "order: nodes 11/11 (100.0%), flows 10/10 (100.0%), 3 instances",
    ]
    assert (suite.path / "out" / "cov" / "order.html").exists()


def test_fail_under_fails_a_green_run_below_the_figure(suite: pytest.Pytester) -> None:
    result = run(suite, "--spillway-coverage", "--spillway-coverage-fail-under=90")
    result.assert_outcomes(passed=2, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert coverage_section(result)[-1] == (
        "FAIL Required process coverage of 90% not reached. Total coverage: 85.7%"
    )
    passing = run(suite, "--spillway-coverage", "--spillway-coverage-fail-under=85")
    assert passing.ret == pytest.ExitCode.OK
    assert coverage_section(passing)[-1] == (
        "Required process coverage of 85% reached. Total coverage: 85.7%"
    )


def test_without_the_option_nothing_is_recorded(suite: pytest.Pytester) -> None:
    result = run(suite)
    result.assert_outcomes(passed=2, skipped=1)
    assert "spillway process coverage" not in result.stdout.str()
    assert not (suite.path / "spillway-coverage").exists()


def test_xdist_workers_data_is_merged(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVAL", "1")
    result = run(suite, "-n", "3", "--spillway-coverage")
    result.assert_outcomes(passed=3)
    assert coverage_section(result)[:2] == [
        "1 process: 21 of 21 flow nodes and sequence flows taken (100.0%)",
        "order: nodes 11/11 (100.0%), flows 10/10 (100.0%), 3 instances",
    ]
    files = sorted(p.name for p in (suite.path / "spillway-coverage" / ".data").glob("*.json"))
    assert files == ["gw0.json", "gw1.json", "gw2.json", "main.json"]
    per_worker = [
        json.loads(p.read_text())["models"]
        for p in (suite.path / "spillway-coverage" / ".data").glob("gw*.json")
    ]
    # The instances were spread over the workers; the summary above is their merge.
    assert sum(m["instances"] for models in per_worker for m in models) == 3


def test_old_data_files_are_not_merged_into_a_new_run(suite: pytest.Pytester) -> None:
    stale = suite.path / "spillway-coverage" / ".data" / "gw7.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"format": 1, "documents": {}, "models": [], "errors": ["stale"]}')
    result = run(suite, "--spillway-coverage")
    assert not stale.exists()
    assert "stale" not in result.stdout.str()


@pytest.mark.postgres
def test_on_postgresql_fixture_and_own_engines(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_url()
    reset_pg(url)
    monkeypatch.setenv("SPILLWAY_TEST_DB", url)
    monkeypatch.setenv("MY_ENGINE_DB", url)
    monkeypatch.setenv("APPROVAL", "1")
    result = run(suite, "--spillway-coverage")
    result.assert_outcomes(passed=3)
    assert coverage_section(result)[:2] == [
        "1 process: 21 of 21 flow nodes and sequence flows taken (100.0%)",
        "order: nodes 11/11 (100.0%), flows 10/10 (100.0%), 3 instances",
    ]


def test_the_report_directory_is_relative_to_where_pytest_runs(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    result = run(suite, "--spillway-coverage", f"--spillway-coverage-report={target}")
    assert coverage_section(result)[-1] == f"report: {target / 'index.html'}"
    assert (target / "index.html").exists()


def test_an_engine_a_test_never_closed_is_read_after_the_test(
    pytester: pytest.Pytester,
) -> None:
    shutil.copytree(EXAMPLES, pytester.path / "processes")
    pytester.makepyfile(
        test_unclosed="""
        from engine import ProcessEngine
        from engine.testing import ManualClock
        from processes import order_handlers


        def test_forgets_to_close():
            eng = ProcessEngine("sqlite://", clock=ManualClock())
            order_handlers.register(eng)
            eng.deploy("processes/order.bpmn")
            eng.start("order", {"amount": 30, "card": "4111"})
        """
    )
    result = run(pytester, "--spillway-coverage")
    result.assert_outcomes(passed=1)
    assert coverage_section(result)[1] == (
        "order: nodes 7/11 (63.6%), flows 6/10 (60.0%), 1 instance"
    )
