"""How commands print: plain tables when piped (rich ones on a terminal), ``--json``, the
instance summary with what failed during the call, and progress on a terminal only."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from engine.core.values import Incident, Job, ProcessInstance
from engine.engine import ProcessEngine


def jsonable(value: Any) -> Any:
    """Value objects (dataclasses), datetimes and containers as JSON-able data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(jsonable(value), default=str, sort_keys=True))


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def print_table(rows: list[list[str]], headers: list[str], title: str | None = None) -> None:
    """A table: rich's on a terminal, plain columns (stable, greppable) when piped."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        t = Table(*headers, title=title, title_justify="left", header_style="bold")
        for row in rows:
            t.add_row(*(str(c) for c in row))
        Console().print(t)
        return
    if title:
        print(title)
    print(table(rows, headers))


def short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def print_instance(inst: ProcessInstance) -> None:
    print(f"instance   {inst.id}")
    print(f"process    {inst.process_key} v{inst.version}")
    print(f"state      {inst.state}")
    print(f"business   {inst.business_key or '-'}")
    if inst.waiting_at:
        print(f"waiting at {', '.join(inst.waiting_at)}")
    print(f"variables  {json.dumps(inst.variables, default=str, sort_keys=True)}")


# -- what failed during one call -------------------------------------------------------


class Snapshot:
    """The jobs and incidents of one instance before a call, to tell what the call did."""

    def __init__(self, eng: ProcessEngine, instance_id: str | None) -> None:
        self.jobs: dict[str, tuple[int, str | None]] = {}
        self.incidents: set[str] = set()
        if instance_id is not None:
            self.jobs = {j.id: (j.attempts, j.last_error) for j in eng.jobs(instance_id)}
            self.incidents = {i.id for i in eng.incidents(instance_id)}

    def failures(self, eng: ProcessEngine, instance_id: str, has_app: bool) -> list[str]:
        """One line per attempt that failed during the call (and per incident it opened)."""
        lines = []
        for job in eng.jobs(instance_id):
            changed = self.jobs.get(job.id) != (job.attempts, job.last_error)
            if job.last_error and changed and job.retries_left > 0:
                lines.append(retry_line(job, has_app))
        for inc in eng.incidents(instance_id):
            if inc.id not in self.incidents:
                lines.append(incident_line(inc))
        return lines


def retry_line(job: Job, has_app: bool = True) -> str:
    total = job.attempts - 1 + job.retries_left
    due = job.due_at.isoformat(timespec="seconds")
    line = (
        f"{job.activity_id} failed: {job.last_error}; retry {job.attempts} of {total} due at {due}"
    )
    if not has_app and "no handler registered" in (job.last_error or ""):
        line += (
            " (no --app given, so no handler is registered in this command; a worker started "
            "with --app runs the retry)"
        )
    return line


def incident_line(inc: Incident) -> str:
    return f"{inc.activity_id} failed: {inc.message}; incident {inc.id} opened"


def print_outcome(
    eng: ProcessEngine, inst: ProcessInstance, before: Snapshot, has_app: bool
) -> None:
    print_instance(inst)
    for line in before.failures(eng, inst.id, has_app):
        print(line)


# -- progress --------------------------------------------------------------------------


class Progress(Protocol):
    def advance(self, n: int = 1, note: str | None = None) -> None: ...
    def total(self, n: int | None) -> None: ...


class _Quiet:
    def advance(self, n: int = 1, note: str | None = None) -> None:
        return None

    def total(self, n: int | None) -> None:
        return None


class _Rich:
    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task = bar, task

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.bar.update(self.task, advance=n, **({"status": note} if note else {}))

    def total(self, n: int | None) -> None:
        self.bar.update(self.task, total=n)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Progress]:
    """A progress bar on stderr while it is a terminal; nothing at all when it is not (piped
    output stays quiet and parseable)."""
    if not sys.stderr.isatty():
        yield _Quiet()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    bar = RichProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        yield _Rich(bar, bar.add_task(description, total=total, status=""))


def ids(values: Sequence[Any]) -> None:
    """``-q``: only ids, one a line (for ``xargs`` and ``$(...)``)."""
    for v in values:
        print(v.id)
