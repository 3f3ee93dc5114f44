"""Rewrites that give modelers' incomplete or tool-specific drawings a documented meaning.

Run after ``engine.deploy.normalize`` on every deployed document (see ``docs/modeling.md``); like
normalize, elements added here carry ``spillway:synthetic="true"``.

- **Message events without a message**: a message event definition (or receive/send task)
  without ``messageRef``, or whose ``messageRef`` names no ``bpmn:message``, gets a synthetic
  message named after the event (its name with whitespace collapsed, else its id). A prefixed
  reference (``tns:Msg``) to an existing message is resolved to it.
- **Pass-through complex gateways**: a complex gateway with at most one incoming and at most
  one unconditional outgoing flow has no activation rule to apply; it becomes a parallel
  gateway, which passes the token on. Any other complex gateway is refused
  (``pass_through_problem``).
- **FEEL conditions**: the text of a condition whose ``language`` is FEEL gets
  ``engine.expressions.feel.MARKER`` so the script engine evaluates it with FEEL.
- **Camunda's multi-instance attributes**: ``camunda:collection`` (a variable name, or
  ``${items}``) and ``camunda:elementVariable`` become BPMN's ``loopDataInputRef`` and
  ``inputDataItem``, which every activity's parser reads (``engine.deploy.parser``). A collection
  expression that is more than a variable (``${order.items}``, Camunda 8's ``=order.items``) is
  evaluated when the activity starts (``engine.bpmn.loop_collections``).
- **Standard loops without a rule**: ``standardLoopCharacteristics`` with neither a loop
  condition nor ``loopMaximum`` get ``loopMaximum="1"``: the activity runs once.
"""

from __future__ import annotations

import re

from lxml import etree

from engine.bpmn import loop_collections
from engine.bpmn.namespaces import SYNTHETIC
from engine.core.errors import ExpressionError
from engine.deploy.normalize import _Ids, _q, has_condition, is_bpmn, local_name
from engine.expressions import feel, juel

#: Elements holding a condition whose ``language`` may be FEEL.
CONDITION_ELEMENTS = ("conditionExpression", "condition", "loopCondition", "completionCondition")


def rewrite(root: etree._Element) -> None:
    """Apply every rewrite of the module docstring to one BPMN document in place."""
    ids = _Ids(root)
    _messages(root, ids)
    for gateway in list(root.iter(_q("complexGateway"))):
        if pass_through_problem(gateway) is None:
            _pass_through(gateway)
    _feel_conditions(root)
    _loops(root)
    _collections(root)


# --- messages ------------------------------------------------------------------------------


def _message_name(owner: etree._Element) -> str:
    return " ".join((owner.get("name") or "").split()) or str(owner.get("id"))


def _messages(root: etree._Element, ids: _Ids) -> None:
    messages = {str(m.get("id")) for m in root.iter(_q("message")) if m.get("id")}
    synthetic: dict[str, str] = {}  # message name -> id of the synthetic message
    holders = root.iter(_q("messageEventDefinition"), _q("receiveTask"), _q("sendTask"))
    for holder in list(holders):
        ref = (holder.get("messageRef") or "").strip()
        if ref in messages:
            continue
        local = ref.rsplit(":", 1)[-1]
        if ref and local in messages:
            holder.set("messageRef", local)
            continue
        if local_name(holder) in ("receiveTask", "sendTask") and not ref:
            continue  # a task without a message is an ordinary task
        owner = holder.getparent() if local_name(holder) == "messageEventDefinition" else holder
        owner = holder if owner is None else owner
        name = _message_name(owner)
        if name not in synthetic:
            message = etree.SubElement(root, _q("message"))
            message.set("id", ids.new(f"{owner.get('id') or 'Message'}__message"))
            message.set("name", name)
            message.set(SYNTHETIC, "true")
            synthetic[name] = str(message.get("id"))
            messages.add(synthetic[name])
        holder.set("messageRef", synthetic[name])


# --- complex gateways ----------------------------------------------------------------------


def pass_through_problem(gateway: etree._Element) -> str | None:
    """Why a complex gateway is not a pass-through (None when it is)."""
    scope = gateway.getparent()
    gateway_id = gateway.get("id")
    flows = [f for f in scope if is_bpmn(f, "sequenceFlow")] if scope is not None else []
    incoming = [f for f in flows if f.get("targetRef") == gateway_id]
    outgoing = [f for f in flows if f.get("sourceRef") == gateway_id]
    if len(incoming) > 1:
        return f"it joins {len(incoming)} flows"
    if len(outgoing) > 1:
        return f"it splits into {len(outgoing)} flows"
    if any(has_condition(f) for f in outgoing):
        return "its outgoing flow has a condition"
    return None


def _pass_through(gateway: etree._Element) -> None:
    gateway.tag = _q("parallelGateway")
    for attribute in ("default", "activationCount"):
        gateway.attrib.pop(attribute, None)
    for child in list(gateway):
        if is_bpmn(child, "activationCondition"):
            gateway.remove(child)


# --- FEEL conditions -----------------------------------------------------------------------


def _feel_conditions(root: etree._Element) -> None:
    for node in root.iter(*(_q(n) for n in CONDITION_ELEMENTS)):
        text = (node.text or "").strip()
        if (
            text
            and feel.is_feel_language(node.get("language"))
            and not text.startswith(feel.MARKER)
        ):
            node.text = feel.MARKER + text


# --- standard loops ------------------------------------------------------------------------


def _loops(root: etree._Element) -> None:
    for loop in root.iter(_q("standardLoopCharacteristics")):
        conditions = [c for c in loop if is_bpmn(c, "loopCondition")]
        if (loop.get("loopMaximum") or "").strip():
            continue
        if any((c.text or "").strip() for c in conditions):
            continue
        for empty in conditions:
            loop.remove(empty)
        loop.set("loopMaximum", "1")


_CAMUNDA_COLLECTION = "{http://camunda.org/schema/1.0/bpmn}collection"
_CAMUNDA_ELEMENT = "{http://camunda.org/schema/1.0/bpmn}elementVariable"
_SIMPLE_COLLECTION = re.compile(r"^\s*[$#]\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\s*$")


def collection_problem(loop: etree._Element) -> str | None:
    """Why a multi-instance ``camunda:collection`` cannot be read, if it cannot."""
    text = loop.get(_CAMUNDA_COLLECTION)
    if text is None or "{" not in text or _SIMPLE_COLLECTION.match(text):
        return None
    try:
        juel.compile_expression(text)
    except ExpressionError as exc:
        return f"camunda:collection '{text}' cannot be evaluated: {exc}"
    return None


def _collections(root: etree._Element) -> None:
    for loop in root.iter(_q("multiInstanceLoopCharacteristics")):
        collection = loop.attrib.pop(_CAMUNDA_COLLECTION, None)
        element = loop.attrib.pop(_CAMUNDA_ELEMENT, None)
        if collection is not None and not any(is_bpmn(c, "loopDataInputRef") for c in loop):
            match = _SIMPLE_COLLECTION.match(collection)
            ref = etree.SubElement(loop, _q("loopDataInputRef"))
            ref.set(SYNTHETIC, "true")
            if match or ("{" not in collection and not collection.strip().startswith("=")):
                ref.text = match.group(1) if match else collection.strip()
            else:  # an expression: evaluated into a variable of its own (bpmn.loop_collections)
                owner = loop.getparent()
                ref.text = loop_collections.variable_for(
                    str(owner.get("id") if owner is not None else "")
                )
                loop.set(loop_collections.COLLECTION_ATTR, collection.strip())
        if element is not None and not any(is_bpmn(c, "inputDataItem") for c in loop):
            item = etree.SubElement(loop, _q("inputDataItem"))
            # SpiffWorkflow names the variable after the item's id.
            item.set("id", element.strip())
            item.set("name", element.strip())
            item.set(SYNTHETIC, "true")
