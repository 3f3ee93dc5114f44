"""The one home of the XML namespaces Spillway reads and writes, and of the attribute names
deploy leaves on a model for run time (synthetic elements, compensation metadata).

``engine.bpmn`` (run time) and ``engine.deploy`` (parsing) both read these; keeping them here
lets run-time modules name a Camunda attribute without importing the deploy layer.
"""

from __future__ import annotations

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ACTIVITI_NS = "http://activiti.org/bpmn"
FLOWABLE_NS = "http://flowable.org/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
#: Spillway's own extension attributes (``spillway:handler``, ``spillway:topic``...).
SPILLWAY_NS = "urn:spillway:bpmn"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

#: On an element deploy added: it runs, but stays out of history and ``waiting_at``.
SYNTHETIC = f"{{{SPILLWAY_NS}}}synthetic"
#: On the definitions element: the document's compensation metadata (JSON).
COMPENSATION_META = f"{{{SPILLWAY_NS}}}compensation"
#: On a compensation dispatch gateway: its configuration (JSON).
COMPENSATION_DISPATCH = f"{{{SPILLWAY_NS}}}compensationDispatch"


def bpmn(local: str) -> str:
    """The qualified tag of a BPMN element."""
    return f"{{{BPMN_NS}}}{local}"


def camunda(local: str) -> str:
    """The qualified tag or attribute name of a Camunda extension."""
    return f"{{{CAMUNDA_NS}}}{local}"


def spillway(local: str) -> str:
    """The qualified name of a Spillway extension attribute."""
    return f"{{{SPILLWAY_NS}}}{local}"
