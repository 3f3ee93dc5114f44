"""Tiny BPMN writer for engine-mechanics tests: the elements a test needs and nothing else.

Files drawn in modelers are tested elsewhere (``processes/`` and the corpus); here a test states
its process in a few lines, e.g.::

    process("p", service("A", handler="a"), service("B", handler="b"))

builds start -> A -> B -> end with sequence flows between consecutive elements.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:spillway="urn:spillway:bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def _attrs(**attrs: object) -> str:
    out = []
    for key, value in attrs.items():
        if value is None:
            continue
        name = key.replace("__", ":").replace("_", "-") if "__" in key else key
        out.append(f'{name}="{value}"')
    return " ".join(out)


def service(
    task_id: str,
    handler: str | None = None,
    *,
    extra: str = "",
    body: str = "",
    tag: str = "serviceTask",
) -> str:
    h = f'spillway:handler="{handler}"' if handler else ""
    return f'<bpmn:{tag} id="{task_id}" {h} {extra}>{body}</bpmn:{tag}>'


def user(task_id: str) -> str:
    return f'<bpmn:userTask id="{task_id}" />'


def catch_message(event_id: str, message_id: str) -> str:
    return (
        f'<bpmn:intermediateCatchEvent id="{event_id}">'
        f'<bpmn:messageEventDefinition messageRef="{message_id}" /></bpmn:intermediateCatchEvent>'
    )


def process(
    pid: str,
    *elements: str,
    flows: Sequence[tuple[str, str] | tuple[str, str, str]] | None = None,
    definitions: str = "",
    start: str = '<bpmn:startEvent id="StartEvent_1" />',
    end: str = '<bpmn:endEvent id="EndEvent_1" />',
    process_attrs: str = "",
    extra: str = "",
) -> bytes:
    """A process; without ``flows``, start, elements and end are chained in order."""
    nodes = [start, *elements, end] if start or end else list(elements)
    if flows is None:
        ids = [_id_of(n) for n in nodes if n]
        flows = list(itertools.pairwise(ids))
    seq = []
    for i, flow in enumerate(flows):
        cond = ""
        if len(flow) == 3:
            cond = (
                '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
                f"{_escape(flow[2])}</bpmn:conditionExpression>"
            )
        seq.append(
            f'<bpmn:sequenceFlow id="Flow_{i}" sourceRef="{flow[0]}" targetRef="{flow[1]}">'
            f"{cond}</bpmn:sequenceFlow>"
        )
    body = "\n".join([n for n in nodes if n] + seq + [extra])
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions {NS} id="Defs_{pid}" '
        f'targetNamespace="http://bpmn.io/schema/bpmn">{definitions}'
        f'<bpmn:process id="{pid}" isExecutable="true" {process_attrs}>\n{body}\n'
        "</bpmn:process></bpmn:definitions>"
    ).encode()


def _id_of(node: str) -> str:
    start = node.index('id="') + 4
    return node[start : node.index('"', start)]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
