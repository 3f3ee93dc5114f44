"""The operator's sub-commands: ``tasks``, ``claim``, ``unclaim``, ``cancel``, ``suspend``,
``activate``, ``set-var``, ``modify``, ``migrate``, ``delete-deployment``, ``cleanup``.

Each is a thin layer over one ``ProcessEngine`` verb (``engine.runtime.operations``); each takes
``--json`` to print what the verb returned as JSON instead of text. Bad input is one line on
stderr and exit code 2, like every ``spillway`` command. ``register`` adds them to the parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.cli.args import parse_vars
from engine.core.errors import EngineError
from engine.core.values import ProcessInstance, UserTask
from engine.engine import ProcessEngine


class OperateUsageError(EngineError):
    default_message = "usage error"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _emit(args: argparse.Namespace, value: Any, text: str) -> None:
    if args.json:
        print(json.dumps(_plain(value), sort_keys=True, default=str))
    else:
        print(text)


def _pairs(pairs: Sequence[str] | None, option: str) -> dict[str, Any]:
    """``name=text`` pairs are strings, ``name:=json`` typed: the rule of ``--var``."""
    return parse_vars(pairs, option)


def _instance_line(inst: ProcessInstance) -> str:
    flags = " (suspended)" if inst.suspended else ""
    waiting = ", ".join(inst.waiting_at) or "-"
    return (
        f"{inst.id}  {inst.process_key} v{inst.version}  {inst.state}{flags}  waiting at {waiting}"
    )


def _task_row(t: UserTask) -> list[str]:
    return [
        t.id,
        t.instance_id,
        t.activity_id,
        t.name or "-",
        t.assignee or "-",
        ",".join(t.candidate_users) or "-",
        ",".join(t.candidate_groups) or "-",
        t.due_at.isoformat(timespec="seconds") if t.due_at else "-",
        str(t.priority),
    ]


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def cmd_tasks(eng: ProcessEngine, args: argparse.Namespace) -> None:
    found = eng.tasks(
        instance_id=args.instance,
        assignee=args.assignee,
        candidate_user=args.candidate_user,
        candidate_group=args.candidate_group or None,
        process_key=args.key,
    )
    headers = ["id", "instance", "activity", "name", "assignee", "users", "groups", "due", "prio"]
    _emit(args, found, _table([_task_row(t) for t in found], headers))


def cmd_claim(eng: ProcessEngine, args: argparse.Namespace) -> None:
    task = eng.claim(args.task, args.user)
    _emit(args, task, f"task {task.id} ({task.activity_id}) claimed by {task.assignee}")


def cmd_unclaim(eng: ProcessEngine, args: argparse.Namespace) -> None:
    task = eng.unclaim(args.task)
    _emit(args, task, f"task {task.id} ({task.activity_id}) unclaimed")


def cmd_cancel(eng: ProcessEngine, args: argparse.Namespace) -> None:
    _emit(args, (inst := eng.cancel(args.id, args.reason, user=args.user)), _instance_line(inst))


def cmd_suspend(eng: ProcessEngine, args: argparse.Namespace) -> None:
    _emit(args, (inst := eng.suspend(args.id)), _instance_line(inst))


def cmd_activate(eng: ProcessEngine, args: argparse.Namespace) -> None:
    _emit(args, (inst := eng.activate(args.id)), _instance_line(inst))


def cmd_set_var(eng: ProcessEngine, args: argparse.Namespace) -> None:
    values = _pairs(args.pairs, "set-var")
    if not values and not args.remove:
        raise OperateUsageError("set-var needs name=value pairs and/or --remove NAME")
    inst = None
    if values:
        inst = eng.set_variables(args.id, values, user=args.user)
    if args.remove:
        inst = eng.remove_variables(args.id, args.remove, user=args.user)
    assert inst is not None
    text = _instance_line(inst) + "\nvariables " + json.dumps(inst.variables, sort_keys=True)
    _emit(args, inst, text)


def cmd_modify(eng: ProcessEngine, args: argparse.Namespace) -> None:
    inst = eng.modify(args.id, start_before=args.start_before, cancel=args.cancel)
    _emit(args, inst, _instance_line(inst))


def cmd_migrate(eng: ProcessEngine, args: argparse.Namespace) -> None:
    mapping: dict[str, str] = {}
    for pair in args.map or []:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise OperateUsageError(f"--map expects Old=New, got {pair!r}")
        mapping[old] = new
    moved = eng.migrate(args.ids, to_version=args.to_version, mapping=mapping or None)
    _emit(args, moved, "\n".join(_instance_line(i) for i in moved))


def cmd_delete_deployment(eng: ProcessEngine, args: argparse.Namespace) -> None:
    deleted = eng.delete_deployment(args.id, cascade=args.cascade)
    _emit(
        args,
        {"deployment": args.id, "instances_deleted": deleted},
        f"deployment {args.id} deleted ({deleted} instances with it)",
    )


def cmd_cleanup(eng: ProcessEngine, args: argparse.Namespace) -> None:
    removed = eng.cleanup_history()
    _emit(args, {"removed": removed}, f"{removed} ended instances removed with their history")


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a version number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"versions start at 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the operator's sub-commands to ``spillway``'s sub-parsers."""

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        return p

    p = add("tasks", "list open user tasks, oldest first")
    p.add_argument("--instance")
    p.add_argument("--assignee")
    p.add_argument("--candidate-user", help="unassigned tasks this user may claim")
    p.add_argument(
        "--candidate-group", action="append", metavar="GROUP", help="repeatable: the user's groups"
    )
    p.add_argument("--key", help="process key")
    p.set_defaults(fn=cmd_tasks)

    p = add("claim", "claim a user task for a user")
    p.add_argument("task", help="user task id (see spillway tasks)")
    p.add_argument("user")
    p.set_defaults(fn=cmd_claim)

    p = add("unclaim", "give a claimed user task back")
    p.add_argument("task")
    p.set_defaults(fn=cmd_unclaim)

    p = add("cancel", "cancel a running instance (state terminated)")
    p.add_argument("id")
    p.add_argument("--reason", default="")
    p.add_argument("--user", help="who cancels it (kept in the history)")
    p.set_defaults(fn=cmd_cancel)

    p = add("suspend", "suspend an instance: none of its jobs or external tasks run")
    p.add_argument("id")
    p.set_defaults(fn=cmd_suspend)

    p = add("activate", "activate a suspended instance")
    p.add_argument("id")
    p.set_defaults(fn=cmd_activate)

    p = add("set-var", "set (or --remove) variables of a running instance")
    p.add_argument("id")
    p.add_argument("pairs", nargs="*", metavar="NAME=VALUE", help="JSON values, else text")
    p.add_argument("--remove", action="append", metavar="NAME")
    p.add_argument("--user", help="who changes them (kept in the variable history)")
    p.set_defaults(fn=cmd_set_var)

    p = add("modify", "move tokens: --cancel an activity, --start-before another")
    p.add_argument("id")
    p.add_argument("--start-before", action="append", metavar="ACTIVITY")
    p.add_argument("--cancel", action="append", metavar="ACTIVITY")
    p.set_defaults(fn=cmd_modify)

    p = add("migrate", "move running instances to another version of their process")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--to-version", type=_version, required=True, metavar="N")
    p.add_argument("--map", action="append", metavar="OLD=NEW", help="a renamed activity")
    p.set_defaults(fn=cmd_migrate)

    p = add("delete-deployment", "delete a deployment (--cascade: with its instances)")
    p.add_argument("id")
    p.add_argument("--cascade", action="store_true")
    p.set_defaults(fn=cmd_delete_deployment)

    p = add("cleanup", "remove ended instances past their history time to live")
    p.set_defaults(fn=cmd_cleanup)
