"""What a failed assertion adds to the instance's description: the path it took, as a compact
list of ids with their virtual times, and for a wrong wait the wait states it could have
reached instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from engine.core.values import HistoryEntry
from engine.testing.bpmn_graph import ProcessGraph

#: How many alternative wait states a failure names.
MAX_ALTERNATIVES = 5
#: How many path entries are shown (the newest; the count of the others is given).
MAX_PATH = 60

#: Flow nodes where no token ever rests (a service task may: for a retry, or an external worker).
_NEVER_WAIT = frozenset(
    {
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "complexGateway",
        "startEvent",
        "endEvent",
        "intermediateThrowEvent",
    }
)

_MARK = {"completed": "", None: " (waiting)", "failed": " (failed)"}


def path_lines(history: Sequence[HistoryEntry]) -> list[str]:
    """``path (virtual time):`` then one line per moment: its time and the ids passed then
    (ended; a wait still open: begun), in order, ``>`` between them; the date is written when
    it changes. A failed attempt is marked ``(failed)``, an open wait ``(waiting)``."""
    if not history:
        return ["path: nothing yet"]
    # An activity is passed when it ends (a wait: since it began); ties keep the history's order.
    entries = sorted(history, key=lambda h: h.ended_at or h.started_at)
    skipped = max(0, len(entries) - MAX_PATH)
    entries = entries[skipped:]
    lines = ["path (virtual time):"]
    if skipped:
        lines.append(f"  ... {skipped} earlier entries")
    groups: list[tuple[datetime, list[str]]] = []
    for entry in entries:
        moment = (entry.ended_at or entry.started_at).replace(microsecond=0)
        step = entry.activity_id + _MARK.get(entry.outcome, f" ({entry.outcome})")
        if groups and groups[-1][0] == moment:
            groups[-1][1].append(step)
        else:
            groups.append((moment, [step]))
    last_date = None
    for moment, steps in groups:
        stamp = moment.strftime("%H:%M:%S")
        if moment.date() != last_date:
            stamp = moment.strftime("%Y-%m-%d ") + stamp
        else:
            stamp = " " * 11 + stamp
        last_date = moment.date()
        lines.append(f"  {stamp}  {' > '.join(steps)}")
    return lines


def waiting_hints(
    graph: ProcessGraph | None,
    expected: Sequence[str],
    waits: Sequence[str],
    history: Sequence[HistoryEntry],
) -> list[str]:
    """Why the instance is not where a test expected it: ids that are no wait state of the
    model, and the wait states nearest the path it took that it never reached."""
    if graph is None:
        return []
    lines = []
    for activity_id in expected:
        node = graph.nodes.get(activity_id)
        if node is None:
            lines.append(f"'{activity_id}' is no flow node of process '{graph.process_id}'")
        elif node.type in _NEVER_WAIT:
            article = "an" if node.type[0] in "aeiou" else "a"
            lines.append(f"'{activity_id}' is {article} {node.type}: an instance never waits there")
    passed = [h.activity_id for h in history]
    starts = list(dict.fromkeys(passed + list(waits)))
    skip = set(passed) | set(waits)
    found = graph.nearest_waits(starts, skip)[:MAX_ALTERNATIVES]
    if found:
        described = ", ".join(
            f"{wait} ({steps} step{'s' if steps != 1 else ''} after {start})"
            for wait, steps, start in found
        )
        lines.append(f"nearest wait states it could have reached instead: {described}")
    else:
        lines.append("nearest wait states it could have reached instead: none")
    return lines
