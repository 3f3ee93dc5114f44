"""Sub-commands about jobs and incidents: ``jobs``, ``incidents``, ``retry``."""

from __future__ import annotations

import argparse

from engine.cli.args import listing_options, positive_int
from engine.cli.output import ids, print_json, print_table, short
from engine.core.values import ExternalTask
from engine.engine import ProcessEngine

TIMER_NOTE = (
    "timer jobs: 'retries left' counts the firings that may still fail (the work after the "
    "timer raising) before an incident; nothing ran synchronously, so it is the retry "
    "policy's retries + 1"
)


def _retries(n: int) -> str:
    return f"{n} retry" if n == 1 else f"{n} retries"


def cmd_jobs(eng: ProcessEngine, args: argparse.Namespace) -> None:
    jobs = eng.jobs(args.instance)
    if args.json:
        print_json(jobs)
        return
    if args.quiet:
        ids(jobs)
        return
    rows = [
        [
            j.id,
            j.instance_id or f"(definition {j.definition_id})",
            j.activity_id,
            j.kind,
            str(j.attempts),
            str(j.retries_left),
            j.due_at.isoformat(timespec="seconds"),
            short(j.last_error or "", 40),
        ]
        for j in jobs
    ]
    headers = ["id", "instance", "activity", "kind", "attempts", "retries left", "due"]
    print_table(rows, [*headers, "last error"])
    if any(j.kind.startswith("timer") for j in jobs):
        print(TIMER_NOTE)


def cmd_incidents(eng: ProcessEngine, args: argparse.Namespace) -> None:
    found = eng.incidents(args.instance, open_only=not args.all)
    if args.json:
        print_json(found)
        return
    if args.quiet:
        ids(found)
        return
    rows = [
        [
            i.id,
            i.instance_id or "-",
            i.activity_id,
            i.created_at.isoformat(timespec="seconds"),
            "open" if i.resolved_at is None else "resolved",
            short(i.message, 50),
        ]
        for i in found
    ]
    print_table(rows, ["id", "instance", "activity", "created", "state", "message"])


def cmd_retry(eng: ProcessEngine, args: argparse.Namespace) -> None:
    done = eng.retry(args.id, retries=args.retries)
    if isinstance(done, ExternalTask):
        print(f"external task {done.id} fetchable now with {_retries(done.retries or 0)}")
    else:
        print(f"job {done.id} due now with {_retries(done.retries_left)}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "jobs",
        help="list jobs",
        description="Jobs: retries of failed service tasks, async continuations, timers. "
        "'attempts' counts the synchronous attempt too. " + TIMER_NOTE + ".",
    )
    p.add_argument("--instance")
    listing_options(p)
    p.set_defaults(fn=cmd_jobs)

    p = sub.add_parser("incidents", help="list incidents")
    p.add_argument("--instance")
    p.add_argument("--all", action="store_true", help="include resolved incidents")
    listing_options(p)
    p.set_defaults(fn=cmd_incidents)

    p = sub.add_parser("retry", help="retry a failed job (by job or incident id)")
    p.add_argument("id")
    p.add_argument("--retries", type=positive_int, default=1)
    p.set_defaults(fn=cmd_retry)
