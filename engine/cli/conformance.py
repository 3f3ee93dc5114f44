"""``spillway conformance DIR``: does every BPMN file in a folder deploy and run as drawn?

Each file is deployed into a throwaway in-memory engine (alone; if that fails, with the other
files of its folder, so call activities resolve). Every executable process of the file (its
``isExecutable`` true or missing) is then started and driven by a harness standing in for the
outside world: every service task's handler returns nothing, user/manual/receive tasks are
completed, messages the instance waits for are correlated, external tasks are completed, and
virtual time jumps to the next due job (timers, retries). The result per process is one of:

- ``ran to end``: the instance completed;
- ``stopped at``: it waits where the harness cannot move it (ids given);
- ``failed``: starting or driving it raised, or it opened an incident (reason given);
- ``refused``: the file did not deploy (the engine's reason, naming file and element).

Processes marked ``isExecutable="false"`` are listed as ``not executable`` and not counted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.bpmn import timer_events
from engine.bpmn.namespaces import BPMN_NS
from engine.bpmn.specs import activity_config, implementation_handler
from engine.core.errors import EngineError
from engine.deploy import vocabulary
from engine.deploy.bpmnxml import Source, parse_xml
from engine.deploy.deployment import listener_handlers
from engine.engine import ProcessEngine
from engine.storage import schema
from engine.testing.clock import ManualClock

MAX_STEPS = 200

RAN, STOPPED, FAILED, REFUSED, NOT_EXECUTABLE = (
    "ran to end",
    "stopped at",
    "failed",
    "refused",
    "not executable",
)


@dataclass(frozen=True)
class Result:
    file: str
    process: str
    outcome: str
    detail: str = ""
    #: Extension words of the file that change nothing at run time here (with why), as
    #: ``engine.deploy.vocabulary`` lists them: "camunda:historyTimeToLive (modeler metadata)".
    ignored: tuple[str, ...] = ()

    @property
    def deployed(self) -> bool:
        return self.outcome in (RAN, STOPPED, FAILED)


BPMN_SUFFIXES = (".bpmn", ".bpmn20.xml")  # as ``spillway deploy DIR`` reads a folder


def _is_model(path: Path, *, dmn: bool = False) -> bool:
    name = path.name.lower()
    suffixes = (".bpmn", ".bpmn20.xml", *((".dmn",) if dmn else ()))
    return path.is_file() and name.endswith(suffixes)


def bpmn_files(folder: Path) -> list[Path]:
    """The BPMN files of a folder and its subfolders: ``*.bpmn`` and ``*.bpmn20.xml``."""
    return sorted(p for p in folder.rglob("*") if _is_model(p))


def _processes(path: Path) -> list[tuple[str, bool]]:
    """(process id, executable) of a file; executable unless isExecutable="false"."""
    root = parse_xml(Source(str(path), path.read_bytes()))
    return [
        (str(p.get("id")), (p.get("isExecutable") or "true").strip().lower() != "false")
        for p in root.iter(f"{{{BPMN_NS}}}process")
    ]


def _engine() -> tuple[ProcessEngine, ManualClock]:
    clock = ManualClock()
    # A small loop cap: a drawn cycle whose condition never turns false fails fast here.
    engine = ProcessEngine("sqlite://", clock=clock, lazy_handlers=True, max_loop_iterations=100)
    return engine, clock


def _register_noop_handlers(eng: ProcessEngine) -> None:
    names: set[str] = set()
    for definition in eng.store.latest_definitions(None).values():
        model = eng.commands.model(definition)
        for spec in model.service_tasks():
            name = implementation_handler(activity_config(spec), spec.bpmn_id)
            if name:
                names.add(name)
        names.update(listener_handlers(model))
    for name in names:
        if eng.handler_for(name) is None:
            eng.register_handler(name, lambda ctx: None)


def _deploy(eng: ProcessEngine, path: Path) -> str:
    """Deploy ``path`` (with its siblings if alone it fails); returns how."""
    try:
        eng.deploy(str(path))
        return "alone"
    except EngineError as alone:
        siblings = [
            str(p) for p in sorted(path.parent.iterdir()) if p != path and _is_model(p, dmn=True)
        ]
        if not siblings:
            raise
        try:
            eng.deploy([str(path), *siblings])
        except EngineError:
            raise alone from None
        return "with siblings"


def _one_line(text: str, limit: int = 200, path: Path | None = None) -> str:
    if path is not None:  # the table names the file already
        text = str(text).replace(f"{path}: ", "")
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _drive(eng: ProcessEngine, clock: ManualClock, instance_id: str) -> Result | None:
    """Move the instance on until it ends or nothing can move it; None while it moves."""
    for _ in range(MAX_STEPS):
        inst = eng.get_instance(instance_id)
        if inst.state == "completed":
            return Result("", "", RAN)
        incidents = eng.incidents(instance_id)
        if incidents:
            first = incidents[0]
            return Result("", "", FAILED, f"incident at {first.activity_id}: {first.message}")
        if not _step(eng, clock, instance_id, inst.waiting_at):
            return Result("", "", STOPPED, ", ".join(inst.waiting_at) or "(nothing)")
    return Result("", "", STOPPED, f"still moving after {MAX_STEPS} steps (a loop?)")


def _step(eng: ProcessEngine, clock: ManualClock, instance_id: str, waits: list[str]) -> bool:
    for activity in waits:
        try:
            eng.complete_task(instance_id, activity)
            return True
        except EngineError:
            pass
    for name in _messages(eng, instance_id):
        try:
            eng.correlate_message(name)
            return True
        except EngineError:
            pass
    topics = sorted({t.topic for t in eng.external_tasks.list()})
    tasks = (
        eng.external_tasks.fetch_and_lock("conformance", topics, max_tasks=100) if topics else []
    )
    if tasks:
        for task in tasks:
            eng.external_tasks.complete(task.id, "conformance")
        return True
    jobs = [j for j in eng.jobs() if j.retries_left > 0]
    if jobs and all(j.due_at >= timer_events.NEVER for j in jobs):
        # A timer drawn without a time: run it, as an operator would.
        eng.execute_job(jobs[0].id)
        return True
    jobs = [j for j in jobs if j.due_at < timer_events.NEVER]
    if jobs:
        due = min(j.due_at for j in jobs)
        if due > clock.now():
            clock.set(due)
        clock.advance(timedelta(milliseconds=1))
        return eng.run_jobs() > 0
    return False


def _messages(eng: ProcessEngine, instance_id: str) -> list[str]:
    subs = schema.subscriptions
    with eng.store.transaction(write=False) as conn:
        rows = conn.execute(sa.select(subs.c.name).where(subs.c.instance_id == instance_id))
        return sorted({str(r[0]) for r in rows})


def ignored_words(path: Path) -> tuple[str, ...]:
    """The file's ignored extension words, each once: "camunda:versionTag (modeler metadata)"."""
    try:
        root = parse_xml(Source(str(path), path.read_bytes()))
    except EngineError:
        return ()
    found: dict[str, str] = {}
    for word in vocabulary.words(root):
        if vocabulary.is_ignored(word.status):
            why = word.status.removeprefix(vocabulary.IGNORED).lstrip(": ")
            found.setdefault(word.word, why)
    return tuple(f"{w} ({why})" if why else w for w, why in sorted(found.items()))


def check_file(path: Path, base: Path) -> Iterator[Result]:
    for result in _check_file(path, base):
        yield dataclasses.replace(result, ignored=ignored_words(path))


def _check_file(path: Path, base: Path) -> Iterator[Result]:
    name = str(path.relative_to(base))
    try:
        processes = _processes(path)
    except EngineError as exc:
        yield Result(name, "-", REFUSED, _one_line(str(exc)))
        return
    for pid, executable in processes:
        if not executable:
            yield Result(name, pid, NOT_EXECUTABLE)
    runnable = [pid for pid, executable in processes if executable]
    if not runnable:
        return
    for pid in runnable:
        eng, clock = _engine()
        try:
            try:
                how = _deploy(eng, path)
            except EngineError as exc:
                yield Result(name, pid, REFUSED, _one_line(str(exc), path=path))
                continue
            _register_noop_handlers(eng)
            try:
                inst = eng.start(pid)
                result = _drive(eng, clock, inst.id)
            except EngineError as exc:
                result = Result("", "", FAILED, f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - the report names anything that escapes
                result = Result("", "", FAILED, f"unexpected {type(exc).__name__}: {exc}")
            assert result is not None
            detail = result.detail + (" (deployed with siblings)" if how != "alone" else "")
            yield Result(name, pid, result.outcome, _one_line(detail.strip()))
        finally:
            eng.close()


def run(folder: Path, progress: Callable[[int, str], None] | None = None) -> list[Result]:
    """Check every BPMN file of ``folder``; ``progress(total, file)`` is called after each."""
    logging.getLogger("spillway").setLevel(logging.ERROR)  # failures are the report's subject
    files = bpmn_files(folder)
    results: list[Result] = []
    for path in files:
        results.extend(check_file(path, folder))
        if progress is not None:
            progress(len(files), path.name)
    return results


def summary(results: list[Result]) -> dict[str, Any]:
    counted = [r for r in results if r.outcome != NOT_EXECUTABLE]
    deployed = [r for r in counted if r.deployed]
    return {
        "files": len({r.file for r in results}),
        "executable": len(counted),
        "deployed": len(deployed),
        "ran": sum(r.outcome == RAN for r in counted),
        "stopped": sum(r.outcome == STOPPED for r in counted),
        "failed": sum(r.outcome == FAILED for r in counted),
        "refused": sum(r.outcome == REFUSED for r in counted),
        "not_executable": len(results) - len(counted),
    }


def render(results: list[Result], fmt: str = "text") -> str:
    s = summary(results)
    ratio = 100.0 * s["deployed"] / s["executable"] if s["executable"] else 100.0
    head = (
        f"{s['files']} files, {s['executable']} executable processes: {s['deployed']} deployed "
        f"({ratio:.0f}%), {s['ran']} ran to end, {s['stopped']} stopped at a wait state, "
        f"{s['failed']} failed, {s['refused']} refused; {s['not_executable']} not executable"
    )
    if fmt == "markdown":
        lines = [
            head,
            "",
            "| file | process | result | detail | ignored extensions |",
            "|---|---|---|---|---|",
        ]
        for r in results:
            detail = r.detail.replace("|", "\\|")
            ignored = "; ".join(r.ignored).replace("|", "\\|")
            lines.append(f"| `{r.file}` | {r.process} | {r.outcome} | {detail} | {ignored} |")
        return "\n".join(lines)
    width = max((len(r.file) for r in results), default=4)
    lines = [f"{'file':<{width}}  {'process':<30}  {'result':<14}  detail"]
    for r in results:
        lines.append(f"{r.file:<{width}}  {r.process[:30]:<30}  {r.outcome:<14}  {r.detail}")
        if r.ignored:
            lines.append(f"{'':<{width}}  {'':<30}  {'ignored':<14}  {'; '.join(r.ignored)}")
    return "\n".join([*lines, "", head])
