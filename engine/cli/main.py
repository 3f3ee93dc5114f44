"""``spillway``: the command line, a thin layer over ProcessEngine.

Every option can also come from the environment (``SPILLWAY_DB``, ``SPILLWAY_APP``). User errors
print one line on stderr and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.bridge import cli as bridge_cli
from engine.core.errors import EngineError
from engine.core.values import ExternalTask, ProcessInstance
from engine.engine import ProcessEngine
from engine.work.pool import load_pools


class UsageError(EngineError):
    default_message = "usage error"


def _parse_vars(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``k=v`` pairs; values are JSON when they parse as JSON (``n=3``, ``ok=true``), else text."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"--var expects name=value, got {pair!r}")
        name, raw = pair.split("=", 1)
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def load_engine(db: str | None, app: str | None) -> ProcessEngine:
    """The engine of ``--app module:attribute`` (an engine or a callable returning one, given
    the ``--db`` URL if it takes an argument), else a plain engine on ``--db``."""
    if not app:
        return ProcessEngine(db)
    if ":" not in app:
        raise UsageError(f"--app expects module:attribute, got {app!r}")
    module_name, attr = app.split(":", 1)
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app {app}: cannot import {module_name}: {exc}") from exc
    target = getattr(module, attr, None)
    if target is None:
        raise UsageError(f"--app {app}: {module_name} has no attribute {attr!r}")
    if isinstance(target, ProcessEngine):
        return target
    if callable(target):
        params = inspect.signature(target).parameters
        engine = target(db) if params else target()
        if isinstance(engine, ProcessEngine):
            return engine
    raise UsageError(f"--app {app}: not a ProcessEngine or a callable returning one")


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_instance(inst: ProcessInstance) -> None:
    print(f"instance   {inst.id}")
    print(f"process    {inst.process_key} v{inst.version}")
    print(f"state      {inst.state}")
    print(f"business   {inst.business_key or '-'}")
    print(f"waiting at {', '.join(inst.waiting_at) or '-'}")
    print(f"variables  {json.dumps(inst.variables, default=str, sort_keys=True)}")


def cmd_deploy(eng: ProcessEngine, args: argparse.Namespace) -> None:
    dep = eng.deploy(args.paths if len(args.paths) > 1 else args.paths[0], name=args.name)
    state = "unchanged, existing deployment" if dep.existing else "deployed"
    print(f"{dep.id}  {state}")
    for key in dep.process_keys:
        print(f"  {key} v{dep.versions.get(key, '?')}")


def cmd_start(eng: ProcessEngine, args: argparse.Namespace) -> None:
    _print_instance(eng.start(args.key, _parse_vars(args.var), business_key=args.business_key))


def cmd_instances(eng: ProcessEngine, args: argparse.Namespace) -> None:
    rows = [
        [
            i.id,
            f"{i.process_key} v{i.version}",
            i.state,
            i.business_key or "-",
            ",".join(i.waiting_at) or "-",
        ]
        for i in eng.instances(
            process_key=args.key, state=args.state, business_key=args.business_key
        )
    ]
    print(_table(rows, ["id", "process", "state", "business key", "waiting at"]))


def cmd_show(eng: ProcessEngine, args: argparse.Namespace) -> None:
    inst = eng.get_instance(args.id)
    _print_instance(inst)
    print("\nhistory")
    rows = [
        [
            h.activity_id,
            h.activity_type,
            h.started_at.strftime("%H:%M:%S.%f")[:-3],
            h.outcome or "(running)",
            h.error or "",
        ]
        for h in eng.history(inst.id)
    ]
    print(_table(rows, ["activity", "type", "started", "outcome", "error"]))
    jobs = eng.jobs(inst.id)
    if jobs:
        print("\njobs")
        print(
            _table(
                [
                    [j.id, j.activity_id, j.kind, str(j.retries_left), j.due_at.isoformat()]
                    for j in jobs
                ],
                ["id", "activity", "kind", "retries", "due"],
            )
        )
    incidents = eng.incidents(inst.id)
    if incidents:
        print("\nincidents")
        print(
            _table(
                [[i.id, i.activity_id, i.message] for i in incidents], ["id", "activity", "message"]
            )
        )


def cmd_complete(eng: ProcessEngine, args: argparse.Namespace) -> None:
    _print_instance(eng.complete_task(args.id, args.task, _parse_vars(args.var)))


def cmd_jobs(eng: ProcessEngine, args: argparse.Namespace) -> None:
    rows = [
        [
            j.id,
            j.instance_id or f"(definition {j.definition_id})",
            j.activity_id,
            j.kind,
            str(j.retries_left),
            str(j.attempts),
            j.due_at.isoformat(timespec="seconds"),
            _short(j.last_error or "", 40),
        ]
        for j in eng.jobs(args.instance)
    ]
    print(
        _table(
            rows, ["id", "instance", "activity", "kind", "retries", "attempts", "due", "last error"]
        )
    )


def cmd_incidents(eng: ProcessEngine, args: argparse.Namespace) -> None:
    rows = [
        [
            i.id,
            i.instance_id or "-",
            i.activity_id,
            i.created_at.isoformat(timespec="seconds"),
            "open" if i.resolved_at is None else "resolved",
            _short(i.message, 50),
        ]
        for i in eng.incidents(args.instance, open_only=not args.all)
    ]
    print(_table(rows, ["id", "instance", "activity", "created", "state", "message"]))


def cmd_retry(eng: ProcessEngine, args: argparse.Namespace) -> None:
    done = eng.retry(args.id, retries=args.retries)
    if isinstance(done, ExternalTask):
        print(f"external task {done.id} fetchable now with {done.retries} retries")
    else:
        print(f"job {done.id} due now with {done.retries_left} retries")


def cmd_worker(eng: ProcessEngine, args: argparse.Namespace) -> None:
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()  # only a flag: the main loop shuts down

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    pools = load_pools(eng, args.pools) if args.pools else []
    executor = eng.job_executor(
        workers=args.workers, max_idle_wait=args.max_idle_wait, lock_duration=args.lock_duration
    )
    executor.start()
    for pool in pools:
        pool.start()
        print(f"worker pool {pool.worker_id}: topic '{pool.topic}'", flush=True)
    print(f"worker {executor.owner}: {args.workers} threads; Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(0.5):
            if (
                args.exit_when_idle
                and not eng.store.next_due_job()
                and executor.free_workers() == args.workers
                and not any(p.busy() or p.pending() for p in pools)
            ):
                break
    finally:
        for pool in pools:
            pool.stop(timeout=args.stop_timeout)
        executor.stop(timeout=args.stop_timeout)
    print(f"worker {executor.owner}: stopped after {executor.executed} jobs", flush=True)


def cmd_bridge(eng: ProcessEngine, args: argparse.Namespace) -> None:
    bridge_cli.run(eng, args)


def cmd_conformance(args: argparse.Namespace) -> None:
    from engine.cli import conformance

    folder = Path(args.dir)
    if not folder.is_dir():
        raise EngineError(f"{folder} is not a folder")
    results = conformance.run(folder)
    if not results:
        raise EngineError(f"{folder} holds no .bpmn file")
    print(conformance.render(results, args.format))


def cmd_demo(eng: ProcessEngine, args: argparse.Namespace) -> None:
    from engine.cli.demo import run_demo

    run_demo(eng, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spillway", description="Spillway BPMN engine")
    parser.add_argument(
        "--db",
        default=os.environ.get("SPILLWAY_DB"),
        help="SQLAlchemy URL (env SPILLWAY_DB; default sqlite:///spillway.db)",
    )
    parser.add_argument(
        "--app",
        default=os.environ.get("SPILLWAY_APP"),
        help="module:attribute of a configured ProcessEngine (env SPILLWAY_APP)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("deploy", help="deploy BPMN files or folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--name")
    p.set_defaults(fn=cmd_deploy)

    p = sub.add_parser("start", help="start a process instance")
    p.add_argument("key")
    p.add_argument("--var", action="append", metavar="NAME=VALUE")
    p.add_argument("--business-key")
    p.set_defaults(fn=cmd_start)

    p = sub.add_parser("instances", help="list process instances")
    p.add_argument("--key")
    p.add_argument("--state", choices=["active", "completed", "incident", "terminated"])
    p.add_argument("--business-key")
    p.set_defaults(fn=cmd_instances)

    p = sub.add_parser("show", help="an instance: state, waits, variables, history")
    p.add_argument("id")
    p.set_defaults(fn=cmd_show)

    p = sub.add_parser("complete", help="complete a user, manual or receive task")
    p.add_argument("id")
    p.add_argument("task", help="BPMN id of the task")
    p.add_argument("--var", action="append", metavar="NAME=VALUE")
    p.set_defaults(fn=cmd_complete)

    p = sub.add_parser("jobs", help="list jobs")
    p.add_argument("--instance")
    p.set_defaults(fn=cmd_jobs)

    p = sub.add_parser("incidents", help="list incidents")
    p.add_argument("--instance")
    p.add_argument("--all", action="store_true", help="include resolved incidents")
    p.set_defaults(fn=cmd_incidents)

    p = sub.add_parser("retry", help="retry a failed job (by job or incident id)")
    p.add_argument("id")
    p.add_argument("--retries", type=int, default=1)
    p.set_defaults(fn=cmd_retry)

    p = sub.add_parser("worker", help="run the job executor until stopped")
    p.add_argument("--workers", type=int, default=int(os.environ.get("SPILLWAY_WORKERS", "4")))
    p.add_argument("--max-idle-wait", type=float, default=1.0)
    p.add_argument("--stop-timeout", type=float, default=30.0)
    p.add_argument(
        "--lock-duration",
        type=float,
        default=300.0,
        help="seconds a job stays locked; a crashed worker's jobs run again after it",
    )
    p.add_argument("--exit-when-idle", action="store_true", help="stop once no job is left")
    p.add_argument(
        "--pools",
        default=os.environ.get("SPILLWAY_POOLS"),
        metavar="FILE",
        help="TOML file of worker pools to run too, [pools.<topic>] tables (env SPILLWAY_POOLS)",
    )
    p.set_defaults(fn=cmd_worker)

    p = sub.add_parser(
        "conformance", help="deploy and run every BPMN file of a folder; print a report"
    )
    p.add_argument("dir")
    p.add_argument("--format", choices=["text", "markdown"], default="text")
    p.set_defaults(standalone=cmd_conformance)

    p = sub.add_parser("bridge", help="publish external tasks to RabbitMQ, apply the results")
    bridge_cli.add_arguments(p)
    p.set_defaults(fn=cmd_bridge)

    p = sub.add_parser("demo", help="deploy the examples in processes/ and run them")
    p.add_argument("--orders", type=int, default=8)
    p.set_defaults(fn=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if getattr(args, "standalone", None):
            args.standalone(args)
            return 0
        eng = load_engine(args.db, args.app)
        try:
            args.fn(eng, args)
        finally:
            eng.close()
    except EngineError as exc:
        if args.debug:
            raise
        print(f"spillway: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
