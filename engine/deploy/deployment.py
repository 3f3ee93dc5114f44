"""Turning BPMN sources into process models the runtime can start.

``compile_sources`` parses a set of sources once (call activities resolve across all of them),
and ``check_bindings`` lists every service task whose handler is missing, so one deployment
error names them all. Nothing here touches the database.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.bpmn import (
    compensation,
    correlation_keys,
    decisions,
    listeners,
    loop_collections,
    mappings,
    specs,
    subprocess_mappings,
    timer_events,
)
from engine.bpmn.namespaces import BPMN_NS, CAMUNDA_NS, COMPENSATION_META, SPILLWAY_NS
from engine.bpmn.specs import ServiceTask, activity_config, implementation_handler
from engine.core import deep_stack, limits
from engine.core.errors import DeploymentError
from engine.deploy import (
    bpmnxml,
    compensation_model,
    normalize,
    refusals,
    rewrites,
    vocabulary,
    zeebe,
)
from engine.deploy.bpmnxml import Source
from engine.deploy.parser import SpillwayParser

log = logging.getLogger("spillway.deploy")


@dataclass
class ProcessModel:
    """One executable process, parsed: the spec plus what the engine needs beside it."""

    key: str
    name: str
    resource: str
    digest: str
    spec: Any
    subprocess_specs: dict[str, Any]
    #: Process-level ``spillway:asyncOnError`` (None: the engine default applies).
    async_on_error: bool | None = None
    message_starts: list[str] = field(default_factory=list)
    #: ``camunda:versionTag`` of the process (None if not given).
    version_tag: str | None = None

    def __post_init__(self) -> None:
        # SpiffWorkflow hooks a multi-instance task's merge of child results up when it creates
        # the children (or deserializes an embedded spec). Our specs are parsed and shared, so
        # hook it up once here: a node that did not create the children itself (another
        # process, a restart) would otherwise drop their results.
        for ts in self.all_task_specs():
            if isinstance(ts, LoopTask):
                child = ts._wf_spec.task_specs.get(ts.task_spec)
                if child is not None and not child.completed_event.is_connected(ts.merge_child):
                    child.completed_event.connect(ts.merge_child)

    def all_task_specs(self) -> Iterator[Any]:
        yield from self.spec.task_specs.values()
        for sub in self.subprocess_specs.values():
            yield from sub.task_specs.values()

    @functools.cached_property
    def has_timers(self) -> bool:
        """Whether any element of the process (its subprocesses included) has a timer event:
        without one, finishing a run need not look for waiting timers."""
        return any(timer_events.timers_of_spec(ts) for ts in self.all_task_specs())

    @functools.cached_property
    def has_event_subprocesses(self) -> bool:
        """Whether the process or one of its subprocesses has an event subprocess."""
        return any(specs.is_event_subprocess_spec(ts) for ts in self.all_task_specs())

    def service_tasks(self) -> Iterator[Any]:
        return (ts for ts in self.all_task_specs() if isinstance(ts, ServiceTask))

    def find_task_spec(self, bpmn_id: str) -> Any | None:
        for ts in self.all_task_specs():
            if getattr(ts, "bpmn_id", None) == bpmn_id:
                return ts
        return None


def _location(exc: ValidationException) -> str:
    file_name, element = getattr(exc, "file_name", ""), getattr(exc, "id", "")
    parts = [str(file_name)] if file_name else []
    if element:
        parts.append(f"element '{element}'")  # as refusals name it
    where = ": ".join(parts)
    return f"{where}: " if where else ""


def _spiff_message(exc: Exception) -> str:
    # SpiffWorkflow appends hints and punctuation; keep the first line.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".") or type(exc).__name__


def _check_ids(source: Source, root: etree._Element) -> None:
    """Every executable process has an id (its process key), and no id is over the limit."""
    for node in root.iter(f"{{{BPMN_NS}}}process"):
        if node.get("isExecutable", "true") != "true":
            continue  # SpiffWorkflow's rule: executable unless it says otherwise
        pid = node.get("id")
        if pid is None or not pid.strip():
            named = f" '{node.get('name')}'" if node.get("name") else ""
            what = "no id" if pid is None else 'an empty id (id="")'
            raise DeploymentError(
                f"{source.name}: executable process element{named} at line {node.sourceline} "
                f"has {what}; the id is the process key start() takes"
            )
    for node in root.iter():
        node_id = node.get("id") if isinstance(node.tag, str) else None
        if node_id is not None and len(node_id) > limits.MAX_NAME_LENGTH:
            raise DeploymentError(
                f"{source.name}: element id '{node_id[:40]}...' ({etree.QName(node).localname}, "
                f"line {node.sourceline}) is {len(node_id)} characters long; the limit is "
                f"{limits.MAX_NAME_LENGTH}"
            )


def _parse_roots(sources: list[Source]) -> list[tuple[Source, etree._Element]]:
    parsed = []
    for source in sources:
        root = bpmnxml.parse_xml(source)
        if not source.is_dmn and not bpmnxml.is_bpmn(root):
            raise DeploymentError(
                f"{source.name}: not a BPMN 2.0 document (root element is "
                f"'{etree.QName(root).localname}', expected the BPMN 'definitions' element)"
            )
        if not source.is_dmn:
            _check_ids(source, root)
        parsed.append((source, root))
    return parsed


def _closure_digest(
    key: str, resource_of: dict[str, str], digests: dict[str, str], deps: dict[str, set[str]]
) -> str:
    """Digest over the process's file and the files of every process it calls."""
    seen: set[str] = set()
    stack = [key]
    files: set[str] = set()
    while stack:
        current = stack.pop()
        if current in seen or current not in resource_of:
            continue
        seen.add(current)
        files.add(digests[resource_of[current]])
        stack.extend(deps.get(current, ()))
    return hashlib.sha256("\n".join(sorted(files)).encode()).hexdigest()


def dialects(root: etree._Element, source: Source) -> list[refusals.Refusal]:
    """Read the Camunda 8 dialect into the engine's (``engine.deploy.zeebe``); what cannot be
    honoured, named."""
    found: list[refusals.Refusal] = []
    refuse = refusals.collector(root, source.name, found)
    vocabulary.translate_legacy(root)  # Activiti and Flowable words Camunda 7 shares
    zeebe.translate(root, refuse)
    for word in vocabulary.scan(root, refuse):  # nothing dropped in silence
        log.info("%s: element '%s': %s %s", source.name, word.owner_id, word.word, word.status)
    return found


def compile_sources(sources: list[Source]) -> list[ProcessModel]:
    """Parse every source together and return the executable processes.

    Raises DeploymentError naming the file and element for anything the parser refuses.
    """
    parser = SpillwayParser()
    parsed = _parse_roots(sources)
    flow_nodes = sum(_count_flow_nodes(root) for source, root in parsed if not source.is_dmn)
    if flow_nodes > deep_stack.MAX_FLOW_NODES:
        names = ", ".join(s.name for s in sources)
        raise DeploymentError(
            f"{names}: {flow_nodes} flow nodes is over the limit of {deep_stack.MAX_FLOW_NODES} "
            "per deployment"
        )
    # SpiffWorkflow's parser recurses once per flow node: room for it (engine.core.deep_stack).
    return deep_stack.run(lambda: _compile(parser, sources, parsed), flow_nodes, pause_gc=True)


def _count_flow_nodes(root: etree._Element) -> int:
    return sum(
        1
        for node in root.iter()
        if isinstance(node.tag, str) and normalize.local_name(node) in normalize.FLOW_NODES
    )


def _compile(
    parser: SpillwayParser,
    sources: list[Source],
    parsed: list[tuple[Source, etree._Element]],
) -> list[ProcessModel]:
    refused = [r for source, root in parsed if not source.is_dmn for r in dialects(root, source)]
    refused += [
        r for source, root in parsed if not source.is_dmn for r in refusals.check(root, source.name)
    ]
    if refused:
        raise refusals.UnsupportedElements(refused)
    for source, root in parsed:
        if not source.is_dmn:
            normalize.normalize(root, source.name)
            compensation_model.rewrite(root, source.name)  # before handlers are copied on
            rewrites.rewrite(root)  # messages, complex gateways, FEEL, loops: docs/modeling.md
    digests = {source.name: source.digest for source, _ in parsed}
    try:
        for source, root in parsed:
            if source.is_dmn:
                for decision in decisions.split(root):  # SpiffWorkflow reads one per document
                    parser.add_dmn_xml(decision, filename=source.name)
            else:
                parser.add_bpmn_xml(root, filename=source.name)
    except ValidationException as exc:
        raise DeploymentError(f"{_location(exc)}{_spiff_message(exc)}") from exc
    except (SpiffWorkflowException, KeyError, TypeError, ValueError, AttributeError) as exc:
        names = ", ".join(s.name for s in sources)
        raise DeploymentError(f"{names}: cannot parse: {_spiff_message(exc)}") from exc

    keys = parser.get_process_ids()
    for source, root in parsed:
        for process in root.iter(f"{{{BPMN_NS}}}process"):
            if process.get("id") not in keys:
                # Camunda deploys the file and skips the process; so does Spillway, with a note.
                log.warning(
                    "%s: process '%s' is not executable (isExecutable=\"false\"): skipped",
                    source.name,
                    process.get("id"),
                )

    resource_of = {}
    deps: dict[str, set[str]] = {}
    for pid, pp in parser.process_parsers.items():
        resource_of[pid] = pp.filename
        deps[pid] = {str(c) for c in pp.called_element_ids()}

    # Elements by (file, id), for the activity mappings the parser does not keep.
    nodes = {
        (source.name, str(node.get("id"))): node
        for source, root in parsed
        if not source.is_dmn
        for node in root.iter()
        if isinstance(node.tag, str) and node.get("id")
    }
    process_nodes = {
        str(node.get("id")): node
        for source, root in parsed
        if not source.is_dmn
        for node in root.iter(f"{{{BPMN_NS}}}process")
    }
    compensation_metas = {
        source.name: json.loads(str(root.get(COMPENSATION_META)))
        for source, root in parsed
        if not source.is_dmn and root.get(COMPENSATION_META)
    }
    message_keys = zeebe.correlation_keys(root for source, root in parsed if not source.is_dmn)
    models = []
    for key in sorted(keys):
        pp = parser.get_process_parser(key)
        try:
            spec = parser.get_spec(key)
            # A called process missing from the deployment deploys, as in Camunda: reaching
            # the call activity fails naming it (SpiffWorkflow: "called process not found").
            found = parser.get_subprocess_specs(key, require_call_activity_specs=False)
            subprocess_specs = {k: s for k, s in found.items() if s is not None}
            for missing in sorted(k for k, s in found.items() if s is None):
                log.warning(
                    "%s: process '%s' calls process '%s', which is not in this deployment; "
                    "reaching that call activity fails",
                    pp.filename,
                    key,
                    missing,
                )
            message_starts = start_messages(pp.node)
        except ValidationException as exc:
            where = _location(exc) or f"{pp.filename}: process '{key}': "
            raise DeploymentError(f"{where}{_spiff_message(exc)}") from exc
        except (SpiffWorkflowException, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DeploymentError(
                f"{pp.filename}: process '{key}': cannot parse: {_spiff_message(exc)}"
            ) from exc
        task_specs = [
            *spec.task_specs.values(),
            *(t for s in subprocess_specs.values() for t in s.task_specs.values()),
        ]
        mappings.attach(task_specs, nodes)
        loop_collections.attach(task_specs, nodes)
        subprocess_mappings.attach(task_specs)
        compensation.attach(task_specs, compensation_metas)
        listeners.attach([spec, *subprocess_specs.values()], nodes, process_nodes)
        correlation_keys.attach([spec, *subprocess_specs.values()], message_keys)
        flag = pp.node.get(f"{{{SPILLWAY_NS}}}asyncOnError")
        models.append(
            ProcessModel(
                key=key,
                name=pp.get_name(),
                resource=pp.filename,
                digest=_closure_digest(key, resource_of, digests, deps),
                spec=spec,
                subprocess_specs=subprocess_specs,
                async_on_error=None if flag is None else flag.strip().lower() == "true",
                message_starts=message_starts,
                version_tag=pp.node.get(f"{{{CAMUNDA_NS}}}versionTag") or None,
            )
        )
    return models


def start_messages(process: Any) -> list[str]:
    """The names of the messages that start ``process`` (an lxml ``bpmn:process`` node): those
    of its own message start events. SpiffWorkflow's ``ProcessParser.start_messages`` searches
    the whole file, so in a file of two processes the one without a message start event
    started on the other's message too (and event subprocesses' message starts, which do not
    start an instance, were counted)."""
    root = process.getroottree().getroot()
    names = {m.get("id"): m.get("name") for m in root.iter(f"{{{BPMN_NS}}}message")}
    out: list[str] = []
    for start in process.iterchildren(f"{{{BPMN_NS}}}startEvent"):
        for definition in start.iterchildren(f"{{{BPMN_NS}}}messageEventDefinition"):
            name = names.get(definition.get("messageRef"))
            if name and name not in out:
                out.append(name)
    return out


def check_bindings(
    models: Iterable[ProcessModel], is_registered: Callable[[str], bool], lazy: bool
) -> None:
    """Raise one DeploymentError listing every service task that cannot be bound."""
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for model in models:
        for ts in model.service_tasks():
            cfg = activity_config(ts)
            where = (model.resource, ts.bpmn_id)
            if where in seen:
                continue
            seen.add(where)
            prefix = f"{model.resource}: task '{ts.bpmn_id}'"
            if cfg.get("external"):
                if not cfg.get("topic"):
                    problems.append(f"{prefix} is an external task without a topic")
                priority = cfg.get("priority")
                if priority is not None and not str(priority).strip().lstrip("-").isdigit():
                    problems.append(
                        f"{prefix}: camunda:taskPriority must be an integer, got {priority!r} "
                        "(expressions are not supported)"
                    )
                continue
            if cfg.get("delegate_expression") or cfg.get("expression"):
                continue
            handler = implementation_handler(cfg, ts.bpmn_id)
            if handler is None or lazy or is_registered(handler):
                continue
            if cfg.get("handler"):
                problems.append(f"{prefix} calls handler '{handler}', which is not registered")
            else:
                problems.append(
                    f"{prefix} has no implementation: register a handler under its id "
                    f"'{handler}', or set spillway:handler, camunda:class, "
                    'camunda:delegateExpression, camunda:expression, or camunda:type="external" '
                    "with a topic"
                )
    problems.extend(_listener_binding_problems(models, is_registered, lazy))
    if problems:
        raise DeploymentError(problems=problems)


def _listener_binding_problems(
    models: Iterable[ProcessModel],
    is_registered: Callable[[str], bool],
    lazy: bool,
    names: bool = False,
) -> list[str]:
    """Listeners naming a handler (class, a simple delegate expression, Camunda 8's type)
    that is not registered."""
    if lazy:
        return []
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for model in models:
        owners: list[tuple[str, Any]] = [(model.key, getattr(model.spec, listeners.SPEC_ATTR, {}))]
        for sub in model.subprocess_specs.values():
            owners.append((str(sub.name), getattr(sub, listeners.SPEC_ATTR, {})))
        for ts in model.all_task_specs():
            owners.append((str(getattr(ts, "bpmn_id", "")), listeners.listeners_of(ts)))
        for owner, found in owners:
            records = [r for group in ("execution", "task") for r in _records(found, group)]
            records += _records({"x": found}, "x")  # process-level
            for flows in (found.get("take") or {}).values():
                for flow_id, flow_records in flows:
                    records += [dict(r, _owner=flow_id) for r in flow_records]
            for record in records:
                name = _listener_handler(record)
                where = str(record.get("_owner") or owner)
                if name is None or is_registered(name) or (model.resource, where, name) in seen:
                    continue
                seen.add((model.resource, where, name))
                if names:
                    problems.append(name)
                    continue
                problems.append(
                    f"{model.resource}: element '{where}': {record.get('source')} "
                    f"({record.get('event')}) calls handler '{name}', which is not registered"
                )
    return problems


def listener_handlers(model: ProcessModel) -> set[str]:
    """The handler names the model's listeners call."""
    return {
        name
        for problem in _listener_binding_problems([model], lambda _: False, False, names=True)
        for name in [problem]
    }


def _records(found: dict[str, Any], group: str) -> list[dict[str, Any]]:
    by_event = found.get(group)
    if not isinstance(by_event, dict):
        return []
    return [
        r
        for event, rs in by_event.items()
        if isinstance(rs, list)
        for r in rs
        if isinstance(r, dict)
    ]


def _listener_handler(record: dict[str, Any]) -> str | None:
    kind, value = record.get("kind"), str(record.get("value") or "")
    if kind in ("class", "type"):
        return value or None
    if kind == "delegate":
        from engine.deploy.parser import simple_expression_name

        return simple_expression_name(value)
    return None
