"""Compensation as modelers draw it, rewritten into flow SpiffWorkflow can run.

SpiffWorkflow cannot parse ``compensateEventDefinition``. Deploy checks what is drawn
(``check``, called by ``engine.deploy.refusals``) and ``rewrite`` (called last by
``engine.deploy.normalize``) turns it into ordinary elements:

- A compensation boundary event on activity A, associated with handler H
  (``isForCompensation="true"``), is removed; A is recorded as compensable by H.
- An event subprocess with a compensation start event inside embedded subprocess S becomes the
  handler of S (an ordinary subprocess, run when S is compensated).
- Each compensation throw event T (intermediate or end) gets a dispatch loop in its scope: T's
  incoming flows go to a synthetic exclusive gateway G; G leads to a copy of every handler T
  may have to run and each copy back to G; G's default flow goes to T, which keeps its own
  outgoing flows. At run time G (``engine.bpmn.compensation.Dispatch``) picks the next handler to
  run, so T completes only after every handler ended (Camunda always waits for completion).
- The original handler elements are removed: handlers run only as copies in dispatch loops.
  Copies get ids of their own; ``spillway:compensation`` on the definitions element maps them
  back to the handler's id, which history, ``waiting_at`` and external tasks show.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from lxml import etree

from engine.bpmn.namespaces import COMPENSATION_DISPATCH, COMPENSATION_META
from engine.core.errors import DeploymentError
from engine.deploy import normalize as nz

#: How checks report: the element and the reason (as in ``engine.deploy.refusals``).
Refuse = Callable[[etree._Element, str], None]

_SUBPROCESSES = ("subProcess", "transaction", "adHocSubProcess")
_LOOPS = ("multiInstanceLoopCharacteristics", "standardLoopCharacteristics")


def _flag(node: etree._Element, name: str) -> bool:
    return (node.get(name) or "").strip().lower() == "true"


def compensate_definition(node: etree._Element) -> etree._Element | None:
    for child in node:
        if nz.is_bpmn(child, "compensateEventDefinition"):
            return child
    return None


def is_handler(node: etree._Element) -> bool:
    return nz.local_name(node) in nz.ACTIVITIES and _flag(node, "isForCompensation")


def is_compensation_event_subprocess(node: etree._Element) -> bool:
    if not nz.is_bpmn(node, "subProcess") or not _flag(node, "triggeredByEvent"):
        return False
    return any(nz.is_bpmn(c, "startEvent") and compensate_definition(c) is not None for c in node)


def _by_id(root: etree._Element) -> dict[str, etree._Element]:
    return {str(n.get("id")): n for n in root.iter() if isinstance(n.tag, str) and n.get("id")}


def _associated_handlers(
    boundary: etree._Element, root: etree._Element, ids: dict[str, etree._Element]
) -> list[etree._Element]:
    bid = boundary.get("id")
    found = []
    for assoc in root.iter(nz._q("association")):
        if assoc.get("sourceRef") == bid and assoc.get("targetRef") in ids:
            found.append(ids[str(assoc.get("targetRef"))])
    return found


def _inside_handler(node: etree._Element) -> bool:
    parent = node.getparent()
    while parent is not None:
        if is_handler(parent) or is_compensation_event_subprocess(parent):
            return True
        parent = parent.getparent()
    return False


def compensation_scope(throw_parent: etree._Element) -> etree._Element:
    """The scope whose activities a throw event in ``throw_parent`` compensates: a throw
    inside an event subprocess compensates the scope that holds the event subprocess."""
    if nz.is_bpmn(throw_parent, "subProcess") and _flag(throw_parent, "triggeredByEvent"):
        parent = throw_parent.getparent()
        return parent if parent is not None else throw_parent
    return throw_parent


# -- deploy-time checks ----------------------------------------------------------------------


def check(node: etree._Element, refuse: Refuse) -> None:
    """Refuse what Spillway cannot run of one BPMN element (see docs/modeling.md)."""
    name = nz.local_name(node)
    if name == "compensateEventDefinition":
        owner = node.getparent()
        if owner is not None:
            _check_event(owner, refuse)
    elif is_handler(node):
        _check_handler(node, refuse)


def _check_event(event: etree._Element, refuse: Refuse) -> None:
    kind = nz.local_name(event)
    root = event.getroottree().getroot()
    if kind == "boundaryEvent":
        ids = _by_id(root)
        attached = ids.get(str(event.get("attachedToRef")))
        handlers = _associated_handlers(event, root, ids)
        if len(handlers) > 1:
            refuse(event, "a compensation boundary event is associated with several handlers")
        elif handlers and not is_handler(handlers[0]):
            refuse(
                event,
                f"compensation boundary event is associated with '{handlers[0].get('id')}', "
                'which is not an activity with isForCompensation="true"',
            )
        if attached is not None and any(nz.is_bpmn(c, *_LOOPS) for c in attached):
            refuse(
                event,
                "compensating a multi-instance or looping activity is not supported; put the "
                "activity in an embedded subprocess and compensate that",
            )
        if _inside_handler(event):
            refuse(event, "compensation inside a compensation handler is not supported")
        if any(nz.is_bpmn(a, "transaction") for a in event.iterancestors()):
            refuse(
                event,
                "compensation inside a transaction subprocess is not supported: cancelling the "
                "transaction would not run the handlers as Camunda does",
            )
        others = [
            b
            for b in root.iter(nz._q("boundaryEvent"))
            if b.get("attachedToRef") == event.get("attachedToRef")
            and compensate_definition(b) is not None
        ]
        if others and others[0] is not event:
            refuse(event, "an activity can have only one compensation boundary event")
    elif kind in ("intermediateThrowEvent", "endEvent"):
        parent = event.getparent()
        definition = compensate_definition(event)
        ref = definition.get("activityRef") if definition is not None else None
        if parent is not None and ref:
            scope = compensation_scope(parent)
            if not any(c.get("id") == ref for c in scope if nz.local_name(c) in nz.ACTIVITIES):
                refuse(
                    event,
                    f"activityRef '{ref}' names no activity of the scope "
                    f"'{scope.get('id')}' that holds this compensation throw event",
                )
    elif kind == "startEvent":
        esp = event.getparent()
        host = esp.getparent() if esp is not None else None
        if esp is None or not _flag(esp, "triggeredByEvent"):
            refuse(event, "a compensation start event belongs in an event subprocess")
        elif host is None or nz.local_name(host) not in _SUBPROCESSES:
            refuse(
                event,
                "an event subprocess with a compensation start event is supported only inside "
                "an embedded subprocess (a process is never compensated as a whole)",
            )
        else:
            _check_event_subprocess(esp, host, refuse)
    else:
        refuse(event, f"a compensation {kind} is not a BPMN construct Spillway runs")


def _check_event_subprocess(esp: etree._Element, scope: etree._Element, refuse: Refuse) -> None:
    siblings = [c for c in scope if is_compensation_event_subprocess(c)]
    if siblings and siblings[0] is not esp:
        refuse(esp, "a subprocess can have only one compensation event subprocess")
    root = scope.getroottree().getroot()
    if any(
        b.get("attachedToRef") == scope.get("id") and compensate_definition(b) is not None
        for b in root.iter(nz._q("boundaryEvent"))
    ):
        refuse(
            esp,
            f"subprocess '{scope.get('id')}' has both a compensation boundary event and a "
            "compensation event subprocess; keep one",
        )
    if _inside_handler(scope):
        refuse(esp, "compensation inside a compensation handler is not supported")


def _check_handler(node: etree._Element, refuse: Refuse) -> None:
    root = node.getroottree().getroot()
    nid = node.get("id")
    if any(
        f.get("sourceRef") == nid or f.get("targetRef") == nid
        for f in root.iter(nz._q("sequenceFlow"))
    ):
        refuse(
            node,
            "a compensation handler must have no incoming or outgoing sequence flow; it runs "
            "only when compensation is thrown",
        )
    if any(b.get("attachedToRef") == nid for b in root.iter(nz._q("boundaryEvent"))):
        refuse(node, "boundary events on a compensation handler are not supported")


# -- the rewrite -----------------------------------------------------------------------------


class _Rewrite:
    """State of one document's rewrite."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.ids = nz._Ids(root)
        #: compensable activity id -> its handler element (an activity, or a converted
        #: compensation event subprocess)
        self.handler_of: dict[str, etree._Element] = {}
        #: copy id -> the handler element's id it copies (what history shows)
        self.originals: dict[str, str] = {}
        #: ids of subprocesses that stand for a compensation event subprocess (and copies)
        self.event_handlers: set[str] = set()

    def meta(self) -> dict[str, Any]:
        return {
            "activities": {a: str(h.get("id")) for a, h in self.handler_of.items()},
            "originals": self.originals,
            "event_handlers": sorted(self.event_handlers),
        }


def rewrite(root: etree._Element, source_name: str) -> None:
    """Rewrite one (otherwise normalized) BPMN document in place (see the module docstring)."""
    has_definition = next(root.iter(nz._q("compensateEventDefinition")), None) is not None
    if not has_definition and not any(is_handler(n) for n in root.iter() if isinstance(n.tag, str)):
        return
    rw = _Rewrite(root)
    by_id = _by_id(root)
    for boundary in list(root.iter(nz._q("boundaryEvent"))):
        if compensate_definition(boundary) is None:
            continue
        handlers = _associated_handlers(boundary, root, by_id)
        if handlers:
            rw.handler_of[str(boundary.get("attachedToRef"))] = handlers[0]
        _remove(boundary)
    for esp in list(root.iter(nz._q("subProcess"))):
        if is_compensation_event_subprocess(esp):
            _convert_event_subprocess(esp, rw)
    throws = [
        n
        for n in root.iter(nz._q("intermediateThrowEvent"), nz._q("endEvent"))
        if compensate_definition(n) is not None
    ]
    # Deepest first: a handler copied into an outer loop then carries its inner loops along.
    throws.sort(key=lambda n: sum(1 for _ in n.iterancestors()), reverse=True)
    for throw in throws:
        _dispatch_loop(throw, rw, source_name)
    handlers = [n for n in root.iter() if isinstance(n.tag, str) and is_handler(n)]
    for handler in handlers:
        if handler.getparent() is not None:
            _remove(handler)
    removed = {str(h.get("id")) for h in handlers}
    for assoc in list(root.iter(nz._q("association"))):
        if assoc.get("targetRef") in removed or assoc.get("sourceRef") in removed:
            _remove(assoc)
    root.set(COMPENSATION_META, json.dumps(rw.meta(), sort_keys=True))


def _remove(node: etree._Element) -> None:
    parent = node.getparent()
    if parent is not None:
        # Associations of a removed boundary event are dropped with it.
        node_id = node.get("id")
        if node_id:
            for assoc in list(node.getroottree().getroot().iter(nz._q("association"))):
                if assoc.get("sourceRef") == node_id:
                    p = assoc.getparent()
                    if p is not None:
                        p.remove(assoc)
        parent.remove(node)


def _convert_event_subprocess(esp: etree._Element, rw: _Rewrite) -> None:
    """The compensation event subprocess of S becomes S's handler: an ordinary subprocess."""
    scope = esp.getparent()
    for start in esp:
        definition = compensate_definition(start) if nz.is_bpmn(start, "startEvent") else None
        if definition is not None:
            start.remove(definition)
    esp.set("triggeredByEvent", "false")
    esp.set("isForCompensation", "true")
    nz._implicit_start_end(esp, rw.ids)
    if scope is not None:
        rw.handler_of[str(scope.get("id"))] = esp
    rw.event_handlers.add(str(esp.get("id")))


def _candidates(scope: etree._Element, rw: _Rewrite, ref: str | None) -> list[etree._Element]:
    """Handlers a throw in ``scope`` may run: those of its activities and, through completed
    embedded subprocesses without a handler of their own, of theirs (not into call
    activities, whose processes are compensated only from inside)."""
    found: dict[str, etree._Element] = {}

    def visit(element: etree._Element, top: bool) -> None:
        for child in element:
            if nz.local_name(child) not in nz.ACTIVITIES or is_handler(child):
                continue
            if top and ref and child.get("id") != ref:
                continue
            handler = rw.handler_of.get(str(child.get("id")))
            if handler is not None:
                found.setdefault(str(handler.get("id")), handler)
            elif nz.local_name(child) in _SUBPROCESSES:
                visit(child, False)

    visit(scope, True)
    return list(found.values())


def _dispatch_loop(throw: etree._Element, rw: _Rewrite, source_name: str) -> None:
    definition = compensate_definition(throw)
    parent = throw.getparent()
    if definition is None or parent is None:
        return
    ref = (definition.get("activityRef") or "").strip() or None
    throw.remove(definition)
    scope = compensation_scope(parent)
    host = parent.getparent()
    if parent.get("id") in rw.event_handlers and host is not None:
        # Inside a (converted) compensation event subprocess: its subprocess's activities.
        scope = host
    candidates = _candidates(scope, rw, ref)
    if not candidates:
        return  # nothing in scope has a handler: the event just passes, as in Camunda
    throw_id = str(throw.get("id"))
    gateway = nz._add(parent, "exclusiveGateway", rw.ids, f"{throw_id}__compensation")
    gateway_id = str(gateway.get("id"))
    incoming = [
        f for f in parent if nz.is_bpmn(f, "sequenceFlow") and f.get("targetRef") == throw_id
    ]
    if not incoming:
        raise DeploymentError(
            f"{source_name}: compensation throw event '{throw_id}' has no incoming sequence flow"
        )
    for flow in incoming:
        flow.set("targetRef", gateway_id)
    leave = nz._flow(parent, rw.ids, gateway_id, throw_id)
    gateway.set("default", str(leave.get("id")))
    copies: dict[str, str] = {}
    for handler in candidates:
        clone = _copy_handler(handler, parent, rw, throw_id)
        copies[str(handler.get("id"))] = str(clone.get("id"))
        # Dispatch picks the flow; the condition is never evaluated.
        nz._set_condition(nz._flow(parent, rw.ids, gateway_id, str(clone.get("id"))), "${false}")
        nz._flow(parent, rw.ids, str(clone.get("id")), gateway_id)
    config = {"throw": throw_id, "activity_ref": ref, "handlers": copies}
    gateway.set(COMPENSATION_DISPATCH, json.dumps(config, sort_keys=True))


def _copy_handler(
    handler: etree._Element, parent: etree._Element, rw: _Rewrite, throw_id: str
) -> etree._Element:
    clone = copy.deepcopy(handler)
    rename: dict[str, str] = {}
    for el in clone.iter():
        old = el.get("id") if isinstance(el.tag, str) else None
        if not old:
            continue
        new = rw.ids.new(f"{old}__{throw_id}")
        rename[old] = new
        el.set("id", new)
        if nz.local_name(el) in nz.FLOW_NODES:
            rw.originals[new] = rw.originals.get(old, old)
        if old in rw.event_handlers:
            rw.event_handlers.add(new)
    for el in clone.iter():
        if not isinstance(el.tag, str):
            continue
        for attr in ("sourceRef", "targetRef", "attachedToRef", "default"):
            value = el.get(attr)
            if value in rename:
                el.set(attr, rename[str(value)])
        if nz.is_bpmn(el, "incoming", "outgoing") and (el.text or "").strip() in rename:
            el.text = rename[(el.text or "").strip()]
        inner = el.get(COMPENSATION_DISPATCH)
        if inner:
            cfg = json.loads(inner)
            cfg["handlers"] = {h: rename.get(c, c) for h, c in cfg["handlers"].items()}
            el.set(COMPENSATION_DISPATCH, json.dumps(cfg, sort_keys=True))
    clone.attrib.pop("isForCompensation", None)
    parent.append(clone)
    return clone
