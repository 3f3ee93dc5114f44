"""Argument helpers shared by the command modules: the parser that reports a usage error in one
line, option types, and ``--var`` parsing.

``--var NAME=TEXT`` sets a string, always (``--var card=4111`` is the string ``"4111"``), as a
shell user expects; ``--var NAME:=JSON`` sets a typed value written as JSON (``amount:=5000``,
``ok:=true``, ``items:='[1, 2]'``, ``note:=null``). A typed value that is not JSON is an error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from engine.core.errors import EngineError

VAR_HELP = (
    "a variable: NAME=TEXT sets a string; NAME:=JSON a typed value "
    "(amount:=5000, ok:=true, tags:='[\"a\"]'); repeat for more"
)


class UsageError(EngineError):
    default_message = "usage error"


class CommandGroup(Protocol):
    """A module of sub-commands: ``register`` adds its parsers to ``spillway``'s sub-commands."""

    def register(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one ``spillway: error:`` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("spillway").strip()
        where = f"{command}: " if command else ""
        print(
            f"spillway: error: {where}{message} (see: {self.prog} --help)",
            file=sys.stderr,
        )
        sys.exit(2)


def listing_options(p: argparse.ArgumentParser) -> None:
    """``--json`` and ``-q`` of the listing commands."""
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (a list of objects)")
    out.add_argument("-q", "--quiet", action="store_true", help="print only ids, one a line")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0-65535 (0: the system picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value}")
    return value


def positive_float(text: str) -> float:
    """Seconds: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds (a number >= 0), got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0), got {text}")
    return value


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def json_value(raw: str, where: str) -> Any:
    """A JSON value typed on the command line; UsageError naming ``where`` if it is none."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(raw, parse_constant=no_constant)
        json.dumps(value, allow_nan=False)  # 1e999 parses as infinity
    except RecursionError:
        raise UsageError(f"{where}: the JSON value is nested too deeply") from None
    except ValueError as exc:
        reason = str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else str(exc)
        if "integer string conversion" in reason:
            reason = "a whole number of more than 4300 digits"
        raise UsageError(
            f"{where}: not a JSON value ({reason}): {_clip(raw)!r}; use NAME=TEXT for a string"
        ) from None
    return value


def parse_vars(pairs: Sequence[str] | None, option: str = "--var") -> dict[str, Any]:
    """``NAME=TEXT`` (a string) and ``NAME:=JSON`` (a typed value) pairs."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        typed = name.endswith(":")
        name = name[:-1] if typed else name
        if not sep or not name:
            raise UsageError(
                f"{option} expects name=value (NAME=TEXT or NAME:=JSON), got {_clip(pair)!r}"
            )
        out[name] = json_value(raw, f"{option} {name}") if typed else raw
    return out


def check_text_arguments(argv: Sequence[str]) -> None:
    """Every argument must be text that can be stored (a shell may pass undecodable bytes,
    which Python keeps as lone surrogates)."""
    for n, arg in enumerate(argv):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "backslashreplace").decode("ascii", "replace")
            option = argv[n - 1] if n and argv[n - 1].startswith("-") else None
            where = f"the value of {option}" if option else f"argument {n + 1}"
            raise UsageError(f"{where} is not valid UTF-8 text: {_clip(shown)}") from None
