"""``pytest --spillway-coverage``: the pytest side of path coverage.

While coverage is on, every ``ProcessEngine`` the run creates is followed (the fixtures' engines
and those a test makes itself, closed or not): its database is read into the collector when the
engine is closed, after each test for engines still open, and at the end of the session. Each
process (each pytest-xdist worker, and the controller) writes its data to
``<report dir>/.data/<worker>.json``; the process that reports (the controller, or the only
process) merges the files, prints the summary, writes the HTML report and applies
``--spillway-coverage-fail-under``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.engine import ProcessEngine
from engine.testing.coverage import CoverageCollector, CoverageData
from engine.testing.coverage_report import (
    ProcessCoverage,
    summarize,
    terminal_lines,
    total_percent,
    write_html,
)

DEFAULT_REPORT_DIR = "spillway-coverage"
_DIR_KEY = "spillway_coverage_dir"


def add_options(group: Any) -> None:
    group.addoption(
        "--spillway-coverage",
        action="store_true",
        default=False,
        help="record which flow nodes and sequence flows of each deployed process the tests "
        "passed; print a summary and write an HTML report",
    )
    group.addoption(
        "--spillway-coverage-report",
        default=DEFAULT_REPORT_DIR,
        metavar="DIR",
        help=f"directory of the HTML coverage report (default: {DEFAULT_REPORT_DIR})",
    )
    group.addoption(
        "--spillway-coverage-fail-under",
        type=float,
        default=None,
        metavar="N",
        help="fail the run when the process coverage total is below N percent",
    )


class CoveragePlugin:
    """Registered by ``engine.testing.plugin`` when ``--spillway-coverage`` is given."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.collector = CoverageCollector()
        workerinput = getattr(config, "workerinput", None)
        self.worker_id: str = (workerinput or {}).get("workerid", "main")
        given = (workerinput or {}).get(_DIR_KEY) or config.getoption("--spillway-coverage-report")
        self.report_dir = Path(config.invocation_params.dir, given).resolve()
        self.data_dir = self.report_dir / ".data"
        self.reports = workerinput is None
        self.fail_under: float | None = config.getoption("--spillway-coverage-fail-under")
        self.processes: list[ProcessCoverage] | None = None
        self.index: Path | None = None
        self.errors: list[str] = []
        self._engines: weakref.WeakSet[ProcessEngine] = weakref.WeakSet()
        # Engines made during the current test, held until its teardown has read them: an
        # in-memory engine a test never closed could otherwise be collected with its frame.
        self._young: list[ProcessEngine] = []
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []
        if self.reports:
            for old in self.data_dir.glob("*.json"):
                old.unlink()

    # -- following engines ----------------------------------------------------------------

    def install(self) -> None:
        """Follow every ProcessEngine created from now on (undone by ``uninstall``)."""
        plugin = self
        init, close = ProcessEngine.__init__, ProcessEngine.close

        @functools.wraps(init)
        def followed_init(engine: ProcessEngine, *args: Any, **kwargs: Any) -> None:
            init(engine, *args, **kwargs)
            with plugin._lock:
                plugin._engines.add(engine)
                plugin._young.append(engine)

        @functools.wraps(close)
        def collected_close(engine: ProcessEngine) -> None:
            plugin.collect(engine)
            plugin.forget(engine)
            close(engine)

        ProcessEngine.__init__ = followed_init  # type: ignore[method-assign,assignment]
        ProcessEngine.close = collected_close  # type: ignore[method-assign,assignment]

        def restore() -> None:
            ProcessEngine.__init__ = init  # type: ignore[method-assign]
            ProcessEngine.close = close  # type: ignore[method-assign]

        self._restore.append(restore)

    def uninstall(self) -> None:
        while self._restore:
            self._restore.pop()()

    def collect(self, engine: ProcessEngine) -> None:
        """Read an engine's database now (once more if it is still open later)."""
        with self._lock:
            if engine not in self._engines:
                return
            self._engines.discard(engine)
        self.collector.collect(engine)
        with self._lock:
            self._engines.add(engine)

    def forget(self, engine: ProcessEngine) -> None:
        with self._lock:
            self._engines.discard(engine)

    def collect_open_engines(self) -> None:
        with self._lock:
            engines = list(self._engines)
        for engine in engines:
            self.collect(engine)

    # -- hooks ----------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: workers write their data where the controller reads it."""
        node.workerinput[_DIR_KEY] = str(self.report_dir)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        try:
            return (yield)
        finally:
            self.collect_open_engines()
            with self._lock:
                self._young.clear()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.collect_open_engines()
        self.collector.data.dump(self.data_dir / f"{self.worker_id}.json")
        if not self.reports:
            return
        data = CoverageData.load_all(self.data_dir.glob("*.json"))
        self.processes = summarize(data)
        self.errors = data.errors
        self.index = write_html(self.processes, self.report_dir)
        if (
            self.fail_under is not None
            and total_percent(self.processes) < self.fail_under
            and session.exitstatus == pytest.ExitCode.OK
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.processes is None:
            return
        tr = terminalreporter
        tr.write_sep("-", "spillway process coverage")
        shown = self.index
        if shown is not None:
            with contextlib.suppress(ValueError):
                shown = shown.relative_to(Path(os.getcwd()))
        for line in terminal_lines(self.processes, shown):
            tr.write_line(line)
        for error in self.errors:
            tr.write_line(f"not read: {error}", yellow=True)
        total = total_percent(self.processes)
        if self.fail_under is not None:
            if total < self.fail_under:
                tr.write_line(
                    f"FAIL Required process coverage of {self.fail_under:g}% not reached. "
                    f"Total coverage: {total:.1f}%",
                    red=True,
                    bold=True,
                )
            else:
                tr.write_line(
                    f"Required process coverage of {self.fail_under:g}% reached. "
                    f"Total coverage: {total:.1f}%",
                    green=True,
                )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.uninstall()
