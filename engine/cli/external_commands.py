"""``spillway external``: external tasks (list them, their progress per topic, complete one)."""

from __future__ import annotations

import argparse
from collections import Counter

from engine.cli.args import VAR_HELP, listing_options, parse_vars, positive_float
from engine.cli.output import ids, print_instance, print_json, print_table, short
from engine.core.values import ExternalTask
from engine.engine import ProcessEngine

CLI_WORKER = "spillway-cli"


def _state(task: ExternalTask, eng: ProcessEngine) -> str:
    if task.state != "open":
        return task.state
    if task.worker_id and task.lock_expires_at and task.lock_expires_at > eng.now():
        return "locked"
    return "open"


def cmd_external(eng: ProcessEngine, args: argparse.Namespace) -> None:
    if args.action == "complete":
        _complete(eng, args)
        return
    tasks = eng.external_tasks.list(topic=args.topic, instance_id=args.instance)
    if args.by_topic:
        _by_topic(eng, tasks, args.json)
        return
    if args.json:
        print_json(tasks)
        return
    if args.quiet:
        ids(tasks)
        return
    rows = [
        [
            t.id,
            t.topic,
            t.instance_id,
            t.activity_id,
            _state(t, eng),
            t.worker_id or "-",
            "-" if t.retries is None else str(t.retries),
            short(t.error_message or "", 40),
        ]
        for t in tasks
    ]
    headers = ["id", "topic", "instance", "activity", "state", "worker", "retries", "error"]
    print_table(rows, headers)


def _by_topic(eng: ProcessEngine, tasks: list[ExternalTask], as_json: bool) -> None:
    """What is left per topic: the progress of the pools working on it."""
    counts: dict[str, Counter[str]] = {}
    for t in tasks:
        counts.setdefault(t.topic, Counter())[_state(t, eng)] += 1
    summary = {
        topic: {
            "open": c["open"],
            "locked": c["locked"],
            "failed": c["failed"],
            "total": sum(c.values()),
        }
        for topic, c in sorted(counts.items())
    }
    if as_json:
        print_json(summary)
        return
    rows = [
        [topic, str(s["open"]), str(s["locked"]), str(s["failed"]), str(s["total"])]
        for topic, s in summary.items()
    ]
    print_table(rows, ["topic", "open", "locked (in work)", "failed (incident)", "total"])


def _complete(eng: ProcessEngine, args: argparse.Namespace) -> None:
    """Complete a task by hand, as a worker would: lock it for ``--worker-id`` (refused while
    another worker holds it), then complete it with the variables."""
    variables = parse_vars(args.var)
    task = eng.external_tasks.lock(args.id, args.worker_id, lock_duration=args.lock_duration)
    eng.external_tasks.complete(task.id, args.worker_id, variables=variables)
    print(f"external task {task.id} ({task.topic} at {task.activity_id}) completed")
    print_instance(eng.get_instance(task.instance_id))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "external",
        help="list external tasks (per topic with --by-topic); 'external complete ID' one",
        description="Without an action: the open and failed external tasks. "
        "'spillway external complete ID --var ...' completes one by hand, as a worker would.",
    )
    p.add_argument("--topic")
    p.add_argument("--instance")
    p.add_argument(
        "--by-topic",
        action="store_true",
        help="counts per topic: open, locked by a worker, failed (the progress of its pools)",
    )
    listing_options(p)
    actions = p.add_subparsers(dest="action", metavar="{complete}")
    c = actions.add_parser("complete", help="complete one external task by id")
    c.add_argument("id", help="external task id")
    c.add_argument("--var", action="append", metavar="NAME=TEXT|NAME:=JSON", help=VAR_HELP)
    c.add_argument(
        "--worker-id",
        default=CLI_WORKER,
        help=f"the worker completing it (default {CLI_WORKER}); a task another worker has "
        "locked is refused unless this names that worker",
    )
    c.add_argument("--lock-duration", type=positive_float, default=60.0, help=argparse.SUPPRESS)
    p.set_defaults(fn=cmd_external, action=None)
