"""``spillway``: the command line, a thin layer over ProcessEngine.

Every option can also come from the environment (``SPILLWAY_DB``, ``SPILLWAY_APP``). User errors
print one line on stderr and exit 2; ``--debug`` shows the traceback.

The sub-commands live in one module per group; each has ``register(sub)`` and is listed once in
``COMMAND_GROUPS`` below (the one place where groups register).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from engine.cli import instance_commands, job_commands, tool_commands, worker_command
from engine.cli.app_loading import load_engine
from engine.cli.args import CommandGroup
from engine.core.errors import EngineError

# Sub-command groups in --help order. A new group: import its module above, add it here.
COMMAND_GROUPS: tuple[CommandGroup, ...] = (
    instance_commands,
    job_commands,
    worker_command,
    tool_commands,
)


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
    for group in COMMAND_GROUPS:
        group.register(sub)
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
