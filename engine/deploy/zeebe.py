"""The Camunda 8 (zeebe) dialect: a reader that turns ``zeebe:`` extensions into what the engine
runs, beside the Camunda 7 reader (``engine.deploy.parser``).

Camunda Modeler writes ``xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"`` whenever the user
picks Camunda 8. ``translate`` rewrites each honoured zeebe element into its Camunda 7
equivalent in the parsed tree, before anything else reads it, so both dialects run through the
same machinery; FEEL values keep their ``=expr`` form and evaluate as FEEL (with Camunda 8's
rule: an unknown variable is ``null``):

- ``zeebe:taskDefinition type`` -> the handler (``spillway:handler``); ``retries`` (Camunda 8:
  attempts in all, default 3) -> ``spillway:retries`` = retries - 1 (attempts after the first);
  on a script task, an intermediate throw event or an end event the element calls the handler
  like a service task (a job worker, as in Camunda 8);
- ``zeebe:taskHeaders`` and ``zeebe:properties`` -> ``camunda:property``
  (``TaskContext.properties``);
- ``zeebe:ioMapping`` -> ``camunda:inputOutput`` with FEEL values (a source without ``=`` is a
  constant);
- ``zeebe:loopCharacteristics`` -> the multi-instance collection, element and output collection;
- ``zeebe:calledElement`` -> ``calledElement`` plus ``camunda:in variables="all"`` (unless
  ``propagateAllParentVariables="false"``) and ``camunda:out variables="all"`` (local when
  ``propagateAllChildVariables="false"``, so only the output mappings come back);
- ``zeebe:calledDecision`` -> ``camunda:decisionRef`` / ``resultVariable`` (shaped as Camunda 8
  does: one output's value, or a context of the outputs; a list for several rules);
- ``zeebe:script`` -> a FEEL script task with ``camunda:resultVariable``;
- ``zeebe:userTask``, ``assignmentDefinition``, ``formDefinition``, ``taskSchedule``,
  ``priorityDefinition`` -> ``camunda:assignee``, ``candidateUsers``, ``candidateGroups``,
  ``formKey``, ``dueDate``, ``followUpDate``, ``priority`` (``=expr`` values kept);
- FEEL conditions, timers and correlation keys (``=expr``) -> FEEL.

Anything zeebe that cannot be honoured is returned as a refusal naming the element and the
attribute; what changes nothing at run time is left to ``engine.deploy.vocabulary``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from lxml import etree

from engine.bpmn import loop_collections
from engine.bpmn.namespaces import BPMN_NS, CAMUNDA_NS, SPILLWAY_NS
from engine.deploy.normalize import is_bpmn, local_name
from engine.expressions import feel

ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
#: Marks a ``camunda:inputOutput`` written from a ``zeebe:ioMapping``.
DIALECT = f"{{{SPILLWAY_NS}}}dialect"
_EXT = f"{{{BPMN_NS}}}extensionElements"
#: Elements a ``zeebe:taskDefinition`` makes into a handler call.
_JOB_ELEMENTS = frozenset(
    {
        "serviceTask",
        "sendTask",
        "businessRuleTask",
        "scriptTask",
        "intermediateThrowEvent",
        "endEvent",
    }
)
_SIMPLE_NAME = re.compile(r"^[A-Za-z_][\w]*$")

Refuse = Callable[[etree._Element, str], None]


def z(local: str) -> str:
    return f"{{{ZEEBE_NS}}}{local}"


def _c(local: str) -> str:
    return f"{{{CAMUNDA_NS}}}{local}"


def uses_zeebe(root: etree._Element) -> bool:
    """A Camunda 8 file: it declares the zeebe namespace or says it is for Camunda Cloud (its
    ``=expr`` values are FEEL)."""
    platform = root.get("{http://camunda.org/schema/modeler/1.0}executionPlatform") or ""
    return ZEEBE_NS in root.nsmap.values() or platform.strip().lower() == "camunda cloud"


def _extensions(node: etree._Element) -> etree._Element:
    ext = node.find(_EXT)
    if ext is None:
        ext = etree.Element(_EXT)
        node.insert(0, ext)
    return ext


def _zeebe_children(node: etree._Element, local: str) -> list[etree._Element]:
    ext = node.find(_EXT)
    return [] if ext is None else list(ext.findall(z(local)))


def _camunda_child(node: etree._Element, local: str) -> etree._Element:
    ext = _extensions(node)
    found = ext.find(_c(local))
    if found is None:
        found = etree.SubElement(ext, _c(local))
    return found


def _owner_of(element: etree._Element) -> etree._Element:
    current = element.getparent()
    while current is not None and not (is_bpmn(current) and current.get("id")):
        current = current.getparent()
    return element if current is None else current


def _feel_value(text: str) -> str:
    """A mapping value: ``=expr`` -> FEEL (engine.bpmn.mappings reads the marker)."""
    return feel.MARKER + text if text.strip().startswith("=") else text


def _check_feel(owner: etree._Element, what: str, text: str, refuse: Refuse) -> None:
    if text.strip().startswith("="):
        problem = feel.check(text)
        if problem is not None:
            refuse(owner, f"{what} '{text.strip()}' cannot be evaluated: {problem}")


def correlation_keys(roots: Iterable[etree._Element]) -> dict[str, str]:
    """Message name -> the ``correlationKey`` of its ``zeebe:subscription`` (a FEEL
    expression ``=...``, or a literal), over the documents of a deployment."""
    out: dict[str, str] = {}
    for root in roots:
        for message in root.iter(f"{{{BPMN_NS}}}message"):
            name = message.get("name")
            for sub in _zeebe_children(message, "subscription"):
                key = (sub.get("correlationKey") or "").strip()
                if name and key:
                    out[name] = key
    return out


def translate(root: etree._Element, refuse: Refuse) -> None:
    """Rewrite the zeebe extensions of one document in place (see the module docstring)."""
    if not uses_zeebe(root):
        return
    for node in list(root.iter()):
        if not is_bpmn(node):
            continue
        name = local_name(node)
        for definition in _zeebe_children(node, "taskDefinition"):
            _task_definition(node, definition, refuse)
        for headers in _zeebe_children(node, "taskHeaders"):
            _properties(node, headers, "header", "key", refuse)
        for props in _zeebe_children(node, "properties"):
            _properties(node, props, "property", "name", refuse)
        for io in _zeebe_children(node, "ioMapping"):
            _io_mapping(node, io, refuse)
        if name == "multiInstanceLoopCharacteristics":
            for loop in _zeebe_children(node, "loopCharacteristics"):
                _loop(node, loop, refuse)
        for called in _zeebe_children(node, "calledElement"):
            _called_element(node, called, refuse)
        for decision in _zeebe_children(node, "calledDecision"):
            _called_decision(node, decision, refuse)
        for script in _zeebe_children(node, "script"):
            _script(node, script, refuse)
        if name == "userTask":
            _user_task(node, refuse)
        if name == "message":
            for sub in _zeebe_children(node, "subscription"):
                _check_feel(
                    node,
                    "zeebe:subscription correlationKey",
                    sub.get("correlationKey") or "",
                    refuse,
                )
        if name in ("conditionExpression", "completionCondition", "condition"):
            _feel_text(node, refuse, "condition")
        if name in ("timeDuration", "timeDate", "timeCycle"):
            _feel_text(node, refuse, "timer")


def _feel_text(node: etree._Element, refuse: Refuse, what: str) -> None:
    text = (node.text or "").strip()
    if not text.startswith("="):
        return
    _check_feel(_owner_of(node), f"the FEEL {what}", text, refuse)
    node.text = feel.MARKER + text


def _task_definition(node: etree._Element, definition: etree._Element, refuse: Refuse) -> None:
    kind = local_name(node)
    job_type = (definition.get("type") or "").strip()
    if kind == "userTask":
        # Zeebe gives every job-worker user task the type io.camunda.zeebe:userTask whatever
        # its task definition says (Modeler 1.x wrote one): listed as ignored by the vocabulary.
        return
    if kind not in _JOB_ELEMENTS:
        refuse(node, f"zeebe:taskDefinition is not honoured on a {kind}")
        return
    if not job_type:
        refuse(node, "zeebe:taskDefinition has no type (the handler to call)")
        return
    if job_type.startswith("="):
        _check_feel(node, "zeebe:taskDefinition type", job_type, refuse)
    retries = (definition.get("retries") or "").strip()
    if retries:
        if retries.isdigit() and int(retries) >= 1:
            node.set(f"{{{SPILLWAY_NS}}}retries", str(int(retries) - 1))
        else:
            refuse(
                node,
                f"zeebe:taskDefinition retries '{retries}' is not a whole number of at least 1",
            )
            return
    if job_type.startswith("="):  # the handler's name, evaluated when the task is reached
        node.set(f"{{{SPILLWAY_NS}}}handlerExpression", feel.MARKER + job_type)
    else:
        node.set(f"{{{SPILLWAY_NS}}}handler", job_type)
    if kind in ("scriptTask", "intermediateThrowEvent"):
        _become_service_task(node)
    elif kind == "endEvent":
        _end_after_service_task(node)


def _become_service_task(node: etree._Element) -> None:
    """A job worker on a script task or a message throw event is a service task here."""
    node.tag = f"{{{BPMN_NS}}}serviceTask"
    node.attrib.pop("scriptFormat", None)
    for child in list(node):
        if is_bpmn(child) and local_name(child) in ("script", "messageEventDefinition"):
            node.remove(child)


def _end_after_service_task(node: etree._Element) -> None:
    """A message end event with a job worker: the worker, then a none end event."""
    parent = node.getparent()
    assert parent is not None
    end = etree.SubElement(parent, f"{{{BPMN_NS}}}endEvent")
    end_id = f"{node.get('id')}__end"
    end.set("id", end_id)
    end.set(f"{{{SPILLWAY_NS}}}synthetic", "true")
    flow = etree.SubElement(parent, f"{{{BPMN_NS}}}sequenceFlow")
    flow.set("id", f"{node.get('id')}__to__end")
    flow.set("sourceRef", str(node.get("id")))
    flow.set("targetRef", end_id)
    flow.set(f"{{{SPILLWAY_NS}}}synthetic", "true")
    _become_service_task(node)


def _properties(
    node: etree._Element, holder: etree._Element, child: str, key_attr: str, refuse: Refuse
) -> None:
    props = _camunda_child(node, "properties")
    for item in holder.findall(z(child)):
        key = item.get(key_attr)
        if not key:
            refuse(node, f"a zeebe:{child} has no {key_attr}")
            continue
        prop = etree.SubElement(props, _c("property"))
        prop.set("name", key)
        prop.set("value", item.get("value") or "")


def _io_mapping(node: etree._Element, io: etree._Element, refuse: Refuse) -> None:
    target_io = _camunda_child(node, "inputOutput")
    target_io.set(DIALECT, "zeebe")  # outputs on events and multi-instance: mapping_checks
    for local, parameter in (("input", "inputParameter"), ("output", "outputParameter")):
        for item in io.findall(z(local)):
            target = (item.get("target") or "").strip()
            source = item.get("source") or ""
            if not target:
                refuse(node, f"a zeebe:{local} has no target")
                continue
            _check_feel(node, f"zeebe:{local} '{target}' source", source, refuse)
            element = etree.SubElement(target_io, _c(parameter))
            element.set("name", target)
            value = source.strip()
            if value:
                element.text = _feel_value(value)


def _loop(mi: etree._Element, loop: etree._Element, refuse: Refuse) -> None:
    owner = _owner_of(mi)
    collection = (loop.get("inputCollection") or "").strip()
    element = (loop.get("inputElement") or "").strip()
    output = (loop.get("outputCollection") or "").strip()
    output_element = (loop.get("outputElement") or "").strip()
    name = collection[1:].strip() if collection.startswith("=") else collection
    if collection:
        _check_feel(owner, "zeebe:loopCharacteristics inputCollection", collection, refuse)
        # A plain variable is read as one; an expression is evaluated when the activity starts.
        mi.set(_c("collection"), name if _SIMPLE_NAME.match(name) else collection)
    if element:
        mi.set(_c("elementVariable"), element)
    if output:
        item_name = output_element[1:].strip() if output_element.startswith("=") else output_element
        if not _SIMPLE_NAME.match(item_name or ""):
            # An expression: evaluated when each instance ends (bpmn.loop_collections).
            _check_feel(owner, "zeebe:loopCharacteristics outputElement", output_element, refuse)
            item_name = loop_collections.output_variable_for(str(owner.get("id")))
            mi.set(loop_collections.OUTPUT_ATTR, output_element)
        ref = etree.SubElement(mi, f"{{{BPMN_NS}}}loopDataOutputRef")
        ref.text = output
        item = etree.SubElement(mi, f"{{{BPMN_NS}}}outputDataItem")
        item.set("id", item_name)
        item.set("name", item_name)


def _called_element(node: etree._Element, called: etree._Element, refuse: Refuse) -> None:
    process_id = (called.get("processId") or "").strip()
    if not process_id or process_id.startswith("="):
        refuse(
            node,
            f"zeebe:calledElement processId '{process_id}' must name the called process so it "
            "can be deployed with the caller",
        )
        return
    node.set("calledElement", process_id)
    ext = _extensions(node)
    if (called.get("propagateAllParentVariables") or "true").strip().lower() != "false":
        etree.SubElement(ext, _c("in")).set("variables", "all")
    out = etree.SubElement(ext, _c("out"))
    out.set("variables", "all")
    if (called.get("propagateAllChildVariables") or "true").strip().lower() == "false":
        out.set("local", "true")  # only the output mappings come back, as in Camunda 8


def _called_decision(node: etree._Element, decision: etree._Element, refuse: Refuse) -> None:
    decision_id = (decision.get("decisionId") or "").strip()
    result = (decision.get("resultVariable") or "").strip()
    if not decision_id or decision_id.startswith("="):
        refuse(node, f"zeebe:calledDecision decisionId '{decision_id}' must name the decision")
        return
    node.set(_c("decisionRef"), decision_id)
    node.set(_c("mapDecisionResult"), "zeebe")
    if result:
        node.set(_c("resultVariable"), result)


def _script(node: etree._Element, script: etree._Element, refuse: Refuse) -> None:
    expression = (script.get("expression") or "").strip()
    result = (script.get("resultVariable") or "").strip()
    if local_name(node) != "scriptTask":
        refuse(node, f"zeebe:script is not honoured on a {local_name(node)}")
        return
    if not expression:
        refuse(node, "zeebe:script has no expression")
        return
    _check_feel(node, "zeebe:script expression", expression, refuse)
    node.set("scriptFormat", "feel")
    if result:
        node.set(_c("resultVariable"), result)
    for child in list(node):
        if is_bpmn(child, "script"):
            node.remove(child)
    body = etree.SubElement(node, f"{{{BPMN_NS}}}script")
    body.text = expression


_USER_TASK_ATTRS = (
    ("assignmentDefinition", "assignee", "assignee"),
    ("assignmentDefinition", "candidateGroups", "candidateGroups"),
    ("assignmentDefinition", "candidateUsers", "candidateUsers"),
    ("taskSchedule", "dueDate", "dueDate"),
    ("taskSchedule", "followUpDate", "followUpDate"),
    ("priorityDefinition", "priority", "priority"),
)


def _user_task(node: etree._Element, refuse: Refuse) -> None:
    for element, attribute, target in _USER_TASK_ATTRS:
        for holder in _zeebe_children(node, element):
            value = (holder.get(attribute) or "").strip()
            if value:
                _check_feel(node, f"zeebe:{element} {attribute}", value, refuse)
                node.set(_c(target), value)
    for form in _zeebe_children(node, "formDefinition"):
        key = (
            form.get("formKey") or form.get("externalReference") or form.get("formId") or ""
        ).strip()
        if key:
            node.set(_c("formKey"), key)


def is_zeebe(node: etree._Element) -> bool:
    return isinstance(node.tag, str) and node.tag.startswith(f"{{{ZEEBE_NS}}}")


def zeebe_listener_problem(node: etree._Element) -> str | None:
    """Why a ``zeebe:executionListener`` / ``zeebe:taskListener`` cannot run, or None."""
    from engine.bpmn import listeners

    owner = _owner_of(node)
    local = etree.QName(node).localname
    event = (node.get("eventType") or "").strip()
    job_type = (node.get("type") or "").strip()
    if not job_type or job_type.startswith("="):
        return f"zeebe:{local} type '{job_type}' must name the handler"
    if local == "taskListener":
        if local_name(owner) != "userTask":
            return f"a zeebe:taskListener belongs on a user task, not on a {local_name(owner)}"
        if event not in listeners.ZEEBE_TASK_EVENTS:
            return f"zeebe:taskListener eventType '{event}' is not supported (updating is not)"
    elif event not in ("start", "end"):
        return f"zeebe:executionListener eventType '{event}' is not start or end"
    return None
