"""Element ids are the user's: SpiffWorkflow's own task specs never take one away.

SpiffWorkflow names the task specs it adds to every process ``Start``, ``End``,
``<process>.EndJoin``, ``StartEventSplit``/``StartEventJoin`` and ``<id>.BoundaryEventSplit``/
``<id>.BoundaryEventJoin``, in the same dictionary as the specs of BPMN elements, which it names
by element id; a BPMN element called ``Start`` or ``End`` would replace the library's own spec.
So a BPMN element whose id is one of those names is registered under an *engine name*
(``user:<id>``, a colon no NCName id can hold), while its ``bpmn_id`` stays the user's id; the
engine reads and shows only ``bpmn_id`` (history, ``waiting_at``, jobs, incidents, tasks), so
the user never sees the engine name.
"""

from __future__ import annotations

import types
from typing import Any

from SpiffWorkflow.bpmn.parser.ProcessParser import ProcessParser
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.bpmn_spec_mixin import BpmnSpecMixin

#: Names SpiffWorkflow gives its own specs (``Root`` in older serializations).
LIBRARY_NAMES = frozenset({"Start", "End", "Root", "StartEventSplit", "StartEventJoin"})
#: Suffixes of the names it derives from an element or process id.
LIBRARY_SUFFIXES = (".EndJoin", ".BoundaryEventSplit", ".BoundaryEventJoin", ".BoundaryEventParent")
ENGINE_PREFIX = "user:"


def engine_name(bpmn_id: str) -> str:
    """The task-spec name of the element ``bpmn_id``: the id itself unless the library uses it."""
    if bpmn_id in LIBRARY_NAMES or bpmn_id.endswith(LIBRARY_SUFFIXES):
        return ENGINE_PREFIX + bpmn_id
    return bpmn_id


def _add_notify(self: Any, task_spec: Any) -> None:
    # Called by every TaskSpec constructor; the library's own specs are no BpmnSpecMixin.
    if isinstance(task_spec, BpmnSpecMixin):
        task_spec.name = engine_name(task_spec.name)
    type(self)._add_notify(self, task_spec)


class SpillwayProcessParser(ProcessParser):  # type: ignore[misc]
    """ProcessParser whose specs name BPMN elements by ``engine_name``."""

    def create_spec(self) -> Any:
        spec = super().create_spec()
        spec._add_notify = types.MethodType(_add_notify, spec)
        return spec

    def add_tasks(self) -> None:
        # SpiffWorkflow also files an event subprocess under its id among the parent's specs
        # (connect_or_add_trigger), so one with the id ``End`` would replace the library's
        # ``End``: put the library's specs back and trigger the subprocess by engine name.
        library = dict(self.spec.task_specs)
        super().add_tasks()
        for name, original in library.items():
            self.spec.task_specs[name] = original
        triggers = self.spec.start.trigger_specs
        triggers[:] = [engine_name(n) for n in triggers]

    def parse_node(self, node: Any) -> Any:
        # As ProcessParser.parse_node, looking the element up by its engine name.
        name = engine_name(node.get("id"))
        if name in self.spec.task_specs:
            return self.spec.task_specs[name]
        node_parser, spec_class = self.parser._get_parser_class(node.tag)
        if not node_parser or not spec_class:
            raise ValidationException(
                "There is no support implemented for this task type.",
                node=node,
                file_name=self.filename,
            )
        return node_parser(self, spec_class, node, self.nsmap, lane=self.lane).parse_node()
