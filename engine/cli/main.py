"""``spillway``: the command line, a thin layer over ProcessEngine.

Every option can also come from the environment (``SPILLWAY_DB``, ``SPILLWAY_APP``). A user
error prints one ``spillway: error: ...`` line on stderr and exits 2; ``--debug`` shows the
traceback and the engine's own debug log. Output piped into ``head`` that closes early ends the
command quietly.

The sub-commands live in one module per group; each has ``register(sub)`` and is listed once in
``COMMAND_GROUPS`` below (the one place where groups register).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from engine.cli import (
    external_commands,
    instance_commands,
    job_commands,
    operate,
    serve,
    tool_commands,
    worker_command,
)
from engine.cli.app_loading import load_engine
from engine.cli.args import ArgumentParser, CommandGroup, UsageError, check_text_arguments
from engine.core import logjson
from engine.core.errors import EngineError

# Sub-command groups in --help order. A new group: import its module above, add it here.
COMMAND_GROUPS: tuple[CommandGroup, ...] = (
    instance_commands,
    job_commands,
    external_commands,
    worker_command,
    operate,
    serve,
    tool_commands,
)

LOG_FORMATS = ("text", "json")

EPILOG = (
    "--var NAME=TEXT sets a string variable, --var NAME:=JSON a typed one (amount:=5000). "
    "--app module:attribute names a ProcessEngine or a function(url) returning one; "
    "'--app processes:engine' is the examples' handlers. Exit codes: 0 success, "
    "2 user error (one line on stderr)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="spillway", description="Spillway BPMN engine", epilog=EPILOG)
    parser.add_argument(
        "--db",
        default=os.environ.get("SPILLWAY_DB"),
        help="SQLAlchemy URL (env SPILLWAY_DB; default sqlite:///spillway.db); handed to "
        "--app when it is a function",
    )
    parser.add_argument(
        "--app",
        default=os.environ.get("SPILLWAY_APP"),
        help="module:attribute of a configured ProcessEngine or of a function(url) returning "
        "one, so that handlers are registered (env SPILLWAY_APP)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("SPILLWAY_LOG_FORMAT", "text"),
        help="text (errors only, or debug with --debug), or json: one JSON object per line "
        "on stderr, the engine's INFO and above, with instance_id, activity_id, job_id and "
        "attempt on lines about them (env SPILLWAY_LOG_FORMAT)",
    )
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command", required=True, parser_class=ArgumentParser
    )
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def _logging(debug: bool, log_format: str = "text") -> None:
    if log_format not in LOG_FORMATS:  # from SPILLWAY_LOG_FORMAT: argparse checks only options
        raise UsageError(
            f"--log-format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}"
        )
    if log_format == "json":
        # An operator's log pipeline: what the engine does (INFO) and what goes wrong.
        logjson.install(logging.DEBUG if debug else logging.INFO)
        return
    # --debug: the engine's own DEBUG log, not SpiffWorkflow's (which stays at WARNING).
    logging.basicConfig(
        level=logging.WARNING if debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("spillway").setLevel(logging.DEBUG if debug else logging.ERROR)


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _quiet_stdout() -> None:
    """The reader went away (``| head``): drop what is left to print."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    try:
        check_text_arguments(arguments)
        try:
            args = build_parser().parse_args(arguments)
        except SystemExit as exc:  # --help (0) or a usage error already printed (2)
            return exc.code if isinstance(exc.code, int) else 2
        _logging(args.debug, args.log_format)
        if getattr(args, "standalone", None):
            args.standalone(args)
        else:
            eng = load_engine(args.db, args.app)
            try:
                args.fn(eng, args)
            finally:
                eng.close()
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # as a shell reports a command ended by SIGPIPE
    except EngineError as exc:
        if debug:
            raise
        print(f"spillway: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        print(
            f"spillway: error: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
