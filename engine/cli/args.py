"""Argument helpers shared by the command modules: the usage error, ``--var`` parsing and the
type of the sub-command registry."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, Protocol

from engine.core.errors import EngineError


class UsageError(EngineError):
    default_message = "usage error"


class CommandGroup(Protocol):
    """A module of sub-commands: ``register`` adds its parsers to ``spillway``'s sub-commands."""

    def register(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def parse_vars(pairs: Sequence[str] | None) -> dict[str, Any]:
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
