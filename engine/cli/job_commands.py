"""Sub-commands about jobs and incidents: ``jobs``, ``incidents``, ``retry``."""

from __future__ import annotations

import argparse

from engine.cli.output import short, table
from engine.core.models import ExternalTask
from engine.engine import ProcessEngine


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
            short(j.last_error or "", 40),
        ]
        for j in eng.jobs(args.instance)
    ]
    print(
        table(
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
            short(i.message, 50),
        ]
        for i in eng.incidents(args.instance, open_only=not args.all)
    ]
    print(table(rows, ["id", "instance", "activity", "created", "state", "message"]))


def cmd_retry(eng: ProcessEngine, args: argparse.Namespace) -> None:
    done = eng.retry(args.id, retries=args.retries)
    if isinstance(done, ExternalTask):
        print(f"external task {done.id} fetchable now with {done.retries} retries")
    else:
        print(f"job {done.id} due now with {done.retries_left} retries")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
