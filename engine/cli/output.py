"""How commands print: plain tables and the instance summary."""

from __future__ import annotations

import json
from typing import Any

from engine.core.models import ProcessInstance


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def print_instance(inst: ProcessInstance) -> None:
    print(f"instance   {inst.id}")
    print(f"process    {inst.process_key} v{inst.version}")
    print(f"state      {inst.state}")
    print(f"business   {inst.business_key or '-'}")
    print(f"waiting at {', '.join(inst.waiting_at) or '-'}")
    print(f"variables  {json.dumps(inst.variables, default=str, sort_keys=True)}")
