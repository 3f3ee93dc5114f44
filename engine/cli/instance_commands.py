"""Sub-commands about deployments and instances: ``deploy``, ``start``, ``instances``, ``show``,
``complete``, ``message``."""

from __future__ import annotations

import argparse

from engine.cli.args import VAR_HELP, UsageError, listing_options, parse_vars
from engine.cli.output import (
    Snapshot,
    ids,
    incident_line,
    print_instance,
    print_json,
    print_outcome,
    print_table,
    retry_line,
)
from engine.core.errors import DeploymentError
from engine.engine import ProcessEngine


def cmd_deploy(eng: ProcessEngine, args: argparse.Namespace) -> None:
    try:
        dep = eng.deploy(args.paths if len(args.paths) > 1 else args.paths[0], name=args.name)
    except DeploymentError as exc:
        if args.app or "is not registered" not in str(exc):
            raise
        raise UsageError(
            f"{exc} (no --app given: name the module that registers the handlers, e.g. "
            "--app processes:engine for the examples)"
        ) from exc
    state = "unchanged, existing deployment" if dep.existing else "deployed"
    print(f"{dep.id}  {state}")
    for key in dep.process_keys:
        print(f"  {key} v{dep.versions.get(key, '?')}")


def cmd_start(eng: ProcessEngine, args: argparse.Namespace) -> None:
    inst = eng.start(args.key, parse_vars(args.var), business_key=args.business_key)
    if args.quiet:
        print(inst.id)
        return
    print_outcome(eng, inst, Snapshot(eng, None), bool(args.app))


def cmd_instances(eng: ProcessEngine, args: argparse.Namespace) -> None:
    found = eng.instances(process_key=args.key, state=args.state, business_key=args.business_key)
    if args.json:
        print_json(found)
        return
    if args.quiet:
        ids(found)
        return
    rows = [
        [
            i.id,
            f"{i.process_key} v{i.version}",
            i.state,
            i.business_key or "-",
            ",".join(i.waiting_at) or "-",
        ]
        for i in found
    ]
    print_table(rows, ["id", "process", "state", "business key", "waiting at"])


def cmd_show(eng: ProcessEngine, args: argparse.Namespace) -> None:
    inst = eng.get_instance(args.id)
    history = eng.history(inst.id)
    jobs = eng.jobs(inst.id)
    incidents = eng.incidents(inst.id)
    if args.json:
        print_json({"instance": inst, "history": history, "jobs": jobs, "incidents": incidents})
        return
    print_instance(inst)
    print()
    rows = [
        [
            h.activity_id,
            h.activity_name or "",
            h.activity_type,
            h.started_at.strftime("%H:%M:%S.%f")[:-3],
            h.ended_at.strftime("%H:%M:%S.%f")[:-3] if h.ended_at else "",
            h.outcome or "(running)",
            h.error or "",
        ]
        for h in history
    ]
    print_table(
        rows, ["activity", "name", "type", "started", "ended", "outcome", "error"], "history"
    )
    if jobs:
        print()
        print_table(
            [
                [
                    j.id,
                    j.activity_id,
                    j.kind,
                    str(j.attempts),
                    str(j.retries_left),
                    j.due_at.isoformat(timespec="seconds"),
                ]
                for j in jobs
            ],
            ["id", "activity", "kind", "attempts", "retries left", "due"],
            "jobs",
        )
        for j in jobs:
            if j.last_error and j.retries_left > 0:
                print(retry_line(j))
    if incidents:
        print()
        print_table(
            [[i.id, i.activity_id, i.message] for i in incidents],
            ["id", "activity", "message"],
            "incidents",
        )
        for i in incidents:
            print(incident_line(i))


def cmd_complete(eng: ProcessEngine, args: argparse.Namespace) -> None:
    before = Snapshot(eng, args.id)
    inst = eng.complete_task(args.id, args.task, parse_vars(args.var))
    print_outcome(eng, inst, before, bool(args.app))


def cmd_message(eng: ProcessEngine, args: argparse.Namespace) -> None:
    correlation = parse_vars(args.correlate, "--correlate")
    inst = eng.correlate_message(
        args.name,
        parse_vars(args.var),
        correlation=correlation or None,
        business_key=args.business_key,
    )
    print_outcome(eng, inst, Snapshot(eng, None), bool(args.app))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("deploy", help="deploy BPMN files or folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--name")
    p.set_defaults(fn=cmd_deploy)

    p = sub.add_parser(
        "start",
        help="start a process instance",
        description="Start an instance of the latest version of a process. A service task "
        "that fails prints one line (what failed, when the retry is due); the call itself "
        "succeeded, so the exit code is 0.",
    )
    p.add_argument("key", help="the process id (BPMN process key)")
    p.add_argument("--var", action="append", metavar="NAME=TEXT|NAME:=JSON", help=VAR_HELP)
    p.add_argument("--business-key")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the instance id")
    p.set_defaults(fn=cmd_start)

    p = sub.add_parser("instances", help="list process instances")
    p.add_argument("--key")
    p.add_argument("--state", choices=["active", "completed", "incident", "terminated"])
    p.add_argument("--business-key")
    listing_options(p)
    p.set_defaults(fn=cmd_instances)

    p = sub.add_parser("show", help="an instance: state, waits, variables, history, jobs")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_show)

    p = sub.add_parser("complete", help="complete a user, manual or receive task")
    p.add_argument("id", help="instance id")
    p.add_argument("task", help="BPMN id of the task")
    p.add_argument("--var", action="append", metavar="NAME=TEXT|NAME:=JSON", help=VAR_HELP)
    p.set_defaults(fn=cmd_complete)

    p = sub.add_parser(
        "message",
        help="correlate a message: to the instance waiting for it, or start one",
        description="Deliver message NAME to the one instance waiting for it whose variables "
        "match --correlate (and whose business key matches), or start a process whose message "
        "start event listens for it (eng.correlate_message).",
    )
    p.add_argument("name", help="the message name (bpmn:message name)")
    p.add_argument("--var", action="append", metavar="NAME=TEXT|NAME:=JSON", help=VAR_HELP)
    p.add_argument(
        "--correlate",
        action="append",
        metavar="NAME=TEXT|NAME:=JSON",
        help="a process variable the instance must have (same forms as --var); repeat",
    )
    p.add_argument("--business-key")
    p.set_defaults(fn=cmd_message)
