"""Deploy-time checks of activity mappings and external-task error definitions.

``engine.deploy.refusals`` asks these for the reason an element cannot run (None: it runs, see
``engine.bpmn.mappings`` and docs/modeling.md). Scripts inside mappings are checked by
``engine.deploy.refusals`` itself (inline JavaScript and Python run, see
``engine.bpmn.script_bindings``).
"""

from __future__ import annotations

from lxml import etree

from engine.bpmn.namespaces import BPMN_NS, camunda
from engine.deploy.normalize import ACTIVITIES, local_name

#: Events that may carry a mapping (Camunda 7: all events but start and boundary events).
_MAPPED_EVENTS = frozenset({"intermediateThrowEvent", "intermediateCatchEvent", "endEvent"})
#: Scopes whose mappings are not applied (subprocesses, transactions and call activities
#: are: engine.bpmn.subprocess_mappings, engine.bpmn.call_mappings).
_UNMAPPED_SCOPES = frozenset({"adHocSubProcess"})


def mappings_problem(io: etree._Element, owner: etree._Element) -> str | None:
    """Why the ``camunda:inputOutput`` ``io`` of ``owner`` cannot run, or None."""
    kind = local_name(owner)
    zeebe = io.get("{urn:spillway:bpmn}dialect") == "zeebe"
    if zeebe and kind in ("startEvent", "boundaryEvent"):
        if any(p.tag == camunda("inputParameter") for p in io):
            return f"zeebe:input mappings are not allowed on a {kind} (Camunda 8 rejects them)"
    elif kind in ("startEvent", "boundaryEvent"):
        return (
            "camunda:inputOutput is not allowed on start and boundary events (Camunda 7 "
            "rejects it there too); map the variables on the next activity"
        )
    if kind == "subProcess" and (owner.get("triggeredByEvent") or "").strip() == "true":
        return (
            "camunda:inputOutput is not allowed on an event subprocess (Camunda 7 rejects it "
            "there too); map the variables on the activities inside"
        )
    if kind in _UNMAPPED_SCOPES:
        return (
            f"camunda:inputOutput on a {kind} is not applied by Spillway; put the mappings "
            "on the activities inside"
        )
    if kind not in ACTIVITIES and kind not in _MAPPED_EVENTS and not zeebe:
        return f"camunda:inputOutput is not allowed on a {kind}"
    params = [p for p in io if p.tag in (camunda("inputParameter"), camunda("outputParameter"))]
    for param in params:
        if not (param.get("name") or "").strip():
            return f"a camunda:{etree.QName(param).localname} has no name"
        for entry in param.iter(camunda("entry")):
            if entry.get("key") is None:
                return "a camunda:entry of a camunda:map has no key"
    multi = owner.find(f"{{{BPMN_NS}}}multiInstanceLoopCharacteristics") is not None
    if multi and not zeebe and any(p.tag == camunda("outputParameter") for p in params):
        return (
            "output parameters on a multi-instance activity are not supported (Camunda 7 "
            "rejects them too: every instance would overwrite the others' results)"
        )
    return None


def error_event_problem(definition: etree._Element) -> str | None:
    """Why a ``camunda:errorEventDefinition`` of an external task cannot run, or None."""
    ref = (definition.get("errorRef") or "").strip()
    if not (definition.get("expression") or "").strip():
        return "camunda:errorEventDefinition has no expression deciding when to throw it"
    root = definition.getroottree().getroot()
    error = next((e for e in root.iter(f"{{{BPMN_NS}}}error") if e.get("id") == ref), None)
    if error is None:
        return f"camunda:errorEventDefinition references error '{ref}', which is not defined"
    if not (error.get("errorCode") or "").strip():
        return f"camunda:errorEventDefinition: error '{ref}' has no errorCode to throw"
    return None
