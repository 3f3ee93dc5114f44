"""Path coverage of a test suite: which flow nodes and sequence flows of each deployed process
the suite's instances passed.

A ``CoverageCollector`` reads an engine's database (any engine: the ``process_engine`` fixture's,
or one a test made itself) and adds what it finds to its ``CoverageData``: every deployed process
(so a process no test started shows 0%), and for every instance the path its task tree records
(``engine.bpmn.flow_trace``). Instances already read at the same revision are skipped, so reading
a database again after each test costs only what changed. ``CoverageData`` is plain JSON: each
pytest-xdist worker writes its own file and the controller merges them.

A process is reported per document content: the same key deployed from two different files (or
two versions of one file) gives two entries, each measured against its own diagram.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.bpmn.flow_trace import trace
from engine.deploy import bpmnxml
from engine.deploy.deployment import ProcessModel, compile_sources
from engine.runtime.codec import InstanceCodec
from engine.storage import schema as t
from engine.testing.bpmn_graph import ProcessGraph, read_graphs

if TYPE_CHECKING:
    from engine.engine import ProcessEngine

#: Version of the JSON data files.
DATA_FORMAT = 1
#: Instances whose stored state is read per query.
_CHUNK = 200


@dataclass
class ModelCoverage:
    """What the suite passed in one process of one document."""

    key: str  # the process id
    digest: str  # sha256 of the document holding it
    nodes: set[str] = field(default_factory=set)
    edges: set[tuple[str, str]] = field(default_factory=set)  # (source id, target id)
    instances: int = 0

    @property
    def model_id(self) -> str:
        return model_id(self.key, self.digest)


def model_id(key: str, digest: str) -> str:
    return f"{key}@{digest[:16]}"


@dataclass
class CoverageData:
    """Documents (by digest: name and XML) and what was passed in each of their processes."""

    documents: dict[str, tuple[str, str]] = field(default_factory=dict)
    models: dict[str, ModelCoverage] = field(default_factory=dict)
    #: Engines whose database could not be read (a note in the summary, never a test failure).
    errors: list[str] = field(default_factory=list)

    def model(self, key: str, digest: str) -> ModelCoverage:
        found = self.models.get(model_id(key, digest))
        if found is None:
            found = self.models[model_id(key, digest)] = ModelCoverage(key, digest)
        return found

    def add_document(self, name: str, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        if digest not in self.documents:
            self.documents[digest] = (name, content.decode("utf-8", errors="replace"))
        return digest

    def merge(self, other: CoverageData) -> None:
        for digest, document in other.documents.items():
            self.documents.setdefault(digest, document)
        for theirs in other.models.values():
            mine = self.model(theirs.key, theirs.digest)
            mine.nodes |= theirs.nodes
            mine.edges |= theirs.edges
            mine.instances += theirs.instances
        self.errors += [e for e in other.errors if e not in self.errors]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": DATA_FORMAT,
            "documents": {d: {"name": n, "xml": x} for d, (n, x) in self.documents.items()},
            "models": [
                {
                    "key": m.key,
                    "digest": m.digest,
                    "nodes": sorted(m.nodes),
                    "edges": sorted([s, e] for s, e in m.edges),
                    "instances": m.instances,
                }
                for m in self.models.values()
            ],
            "errors": self.errors,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CoverageData:
        if data.get("format") != DATA_FORMAT:
            raise ValueError(f"spillway coverage data of format {data.get('format')!r}")
        out = cls(errors=list(data.get("errors", [])))
        for digest, document in data["documents"].items():
            out.documents[digest] = (document["name"], document["xml"])
        for m in data["models"]:
            found = out.model(m["key"], m["digest"])
            found.nodes |= set(m["nodes"])
            found.edges |= {(s, e) for s, e in m["edges"]}
            found.instances += int(m["instances"])
        return out

    def dump(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json()), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load_all(cls, paths: Iterable[Path]) -> CoverageData:
        merged = cls()
        for path in sorted(paths):
            merged.merge(cls.from_json(json.loads(path.read_text(encoding="utf-8"))))
        return merged


class CoverageCollector:
    """Reads engines' databases into one ``CoverageData``; thread-safe."""

    def __init__(self) -> None:
        self.data = CoverageData()
        self._seen: dict[str, int] = {}  # instance id -> revision read
        self._codec = InstanceCodec()
        self._compiled: dict[tuple[str, ...], list[ProcessModel]] = {}
        self._graphs: dict[str, dict[str, ProcessGraph]] = {}
        self._lock = threading.Lock()

    def collect(self, engine: ProcessEngine) -> None:
        """Add what ``engine``'s database holds; a failure to read it is noted, not raised."""
        with self._lock:
            try:
                _Reading(self, engine).run()
            except Exception as exc:  # noqa: BLE001 - coverage must never fail a user's test
                note = f"{engine.store.url}: {type(exc).__name__}: {exc}"
                if note not in self.data.errors:
                    self.data.errors.append(note)

    def graphs(self, name: str, content: bytes, digest: str) -> dict[str, ProcessGraph]:
        found = self._graphs.get(digest)
        if found is None:
            found = self._graphs[digest] = read_graphs(content, name)
        return found

    def compiled(self, documents: list[tuple[str, bytes]]) -> list[ProcessModel]:
        sources = [bpmnxml.Source(name, content) for name, content in documents]
        cache_key = tuple(sorted(s.digest for s in sources))
        models = self._compiled.get(cache_key)
        if models is None:
            models = self._compiled[cache_key] = compile_sources(sources)
        return models


class _Reading:
    """One pass over one database."""

    def __init__(self, collector: CoverageCollector, engine: ProcessEngine) -> None:
        self.collector = collector
        self.data = collector.data
        self.engine = engine
        # deployment id -> [(name, content, digest)]
        self.documents: dict[str, list[tuple[str, bytes, str]]] = {}
        self.definitions: dict[str, dict[str, Any]] = {}

    def run(self) -> None:
        with self.engine.store.transaction(write=False) as conn:
            self.definitions = {
                str(r["id"]): dict(r) for r in conn.execute(sa.select(t.definitions)).mappings()
            }
            deployments = {d["deployment_id"] for d in self.definitions.values()}
            for row in conn.execute(
                sa.select(t.resources).where(t.resources.c.deployment_id.in_(deployments))
            ).mappings():
                content = bytes(row["content"])
                digest = self.data.add_document(str(row["name"]), content)
                self.documents.setdefault(str(row["deployment_id"]), []).append(
                    (str(row["name"]), content, digest)
                )
            for definition in self.definitions.values():
                self.data.model(definition["key"], self._digest_of(definition))
            rows = conn.execute(
                sa.select(t.instances.c.id, t.instances.c.rev, t.instances.c.definition_id)
            ).all()
            changed = [r for r in rows if self.collector._seen.get(str(r.id)) != int(r.rev)]
            for start in range(0, len(changed), _CHUNK):
                chunk = changed[start : start + _CHUNK]
                data = dict(
                    conn.execute(
                        sa.select(t.instances.c.id, t.instances.c.data).where(
                            t.instances.c.id.in_([str(r.id) for r in chunk])
                        )
                    ).all()
                )
                for inst in chunk:
                    try:
                        self._instance(str(inst.id), str(inst.definition_id), data[inst.id])
                    except Exception as exc:  # noqa: BLE001 - noted; the other instances count
                        self.data.errors.append(
                            f"{self.engine.store.url}: instance {inst.id}: "
                            f"{type(exc).__name__}: {exc}"
                        )
                    self.collector._seen[str(inst.id)] = int(inst.rev)

    def _digest_of(self, definition: Mapping[str, Any]) -> str:
        documents = self.documents.get(str(definition["deployment_id"]), [])
        for name, _content, digest in documents:
            if name == definition["resource"]:
                return digest
        raise LookupError(f"definition {definition['id']} has no stored document")

    def _instance(self, instance_id: str, definition_id: str, state: str) -> None:
        definition = self.definitions[definition_id]
        deployment = str(definition["deployment_id"])
        documents = self.documents[deployment]
        models = self.collector.compiled([(n, c) for n, c, _ in documents])
        model = next(m for m in models if m.key == definition["key"])
        workflow = self.collector._codec.load(state, model.spec, model.subprocess_specs)
        first = self.collector._seen.get(instance_id) is None
        for process_id, passed in trace(workflow).items():
            if process_id == definition["key"]:
                digest = self._digest_of(definition)
            else:
                digest = self._called_digest(process_id, deployment)
            coverage = self.data.model(process_id, digest)
            coverage.nodes |= passed.nodes
            coverage.edges |= passed.edges
            if first:
                coverage.instances += 1

    def _called_digest(self, process_id: str, deployment: str) -> str:
        """The document of a process a call activity started: the caller's deployment's, else
        the newest deployed definition of that key."""
        for name, content, digest in self.documents[deployment]:
            if process_id in self.collector.graphs(name, content, digest):
                return digest
        newest = max(
            (d for d in self.definitions.values() if d["key"] == process_id),
            key=lambda d: int(d["version"]),
        )
        return self._digest_of(newest)
