"""Sub-commands about deployments and instances: ``deploy``, ``start``, ``instances``, ``show``,
``complete``."""

from __future__ import annotations

import argparse

from engine.cli.args import parse_vars
from engine.cli.output import print_instance, table
from engine.engine import ProcessEngine


def cmd_deploy(eng: ProcessEngine, args: argparse.Namespace) -> None:
    dep = eng.deploy(args.paths if len(args.paths) > 1 else args.paths[0], name=args.name)
    state = "unchanged, existing deployment" if dep.existing else "deployed"
    print(f"{dep.id}  {state}")
    for key in dep.process_keys:
        print(f"  {key} v{dep.versions.get(key, '?')}")


def cmd_start(eng: ProcessEngine, args: argparse.Namespace) -> None:
    print_instance(eng.start(args.key, parse_vars(args.var), business_key=args.business_key))


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
    print(table(rows, ["id", "process", "state", "business key", "waiting at"]))


def cmd_show(eng: ProcessEngine, args: argparse.Namespace) -> None:
    inst = eng.get_instance(args.id)
    print_instance(inst)
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
    print(table(rows, ["activity", "type", "started", "outcome", "error"]))
    jobs = eng.jobs(inst.id)
    if jobs:
        print("\njobs")
        print(
            table(
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
            table(
                [[i.id, i.activity_id, i.message] for i in incidents], ["id", "activity", "message"]
            )
        )


def cmd_complete(eng: ProcessEngine, args: argparse.Namespace) -> None:
    print_instance(eng.complete_task(args.id, args.task, parse_vars(args.var)))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
