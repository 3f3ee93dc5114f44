"""Loading BPMN sources as untrusted XML.

A BPMN file comes from a modeler, a repository or a user upload: it is parsed with entity
resolution, DTD loading and network access off, any DOCTYPE is refused before libxml2 sees it
(that rules out external entities and entity-expansion bombs at once), and size and depth are
bounded.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from engine.bpmn.namespaces import BPMN_NS
from engine.core.errors import DeploymentError

MAX_SOURCE_BYTES = 16 * 1024 * 1024  # a large modeler file is well under 2 MB
MAX_FILES = 2000

_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """One BPMN (or DMN) document: its name (file path or ``<bytes>``) and raw content."""

    name: str
    content: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def is_dmn(self) -> bool:
        return self.name.lower().endswith(".dmn")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(source: Source) -> etree._Element:
    """Parse one source into an element tree, or raise a DeploymentError naming it."""
    content = source.content
    if not content.strip():
        raise DeploymentError(f"{source.name}: the document is empty")
    if len(content) > MAX_SOURCE_BYTES:
        raise DeploymentError(
            f"{source.name}: {len(content)} bytes is over the limit of {MAX_SOURCE_BYTES}"
        )
    if _DOCTYPE.search(content):
        raise DeploymentError(
            f"{source.name}: DOCTYPE and ENTITY declarations are not allowed in BPMN sources"
        )
    try:
        root = etree.fromstring(content, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise DeploymentError(f"{source.name}: not well-formed XML: {exc}") from exc
    if root is None:  # pragma: no cover - lxml returns None only for empty input, checked above
        raise DeploymentError(f"{source.name}: the document is empty")
    return root


def is_bpmn(root: etree._Element) -> bool:
    return root.tag == f"{{{BPMN_NS}}}definitions"


def collect_sources(
    target: str | os.PathLike[str] | bytes | list[str | os.PathLike[str]],
) -> list[Source]:
    """Turn what ``deploy()`` accepts (a path, a folder, a list of them, or XML bytes)
    into sources, in a stable order. Folders contribute ``*.bpmn``, ``*.bpmn20.xml`` and ``*.dmn``.
    """
    if isinstance(target, bytes | bytearray):
        return [Source("<bytes>", bytes(target))]
    items = target if isinstance(target, list) else [target]
    if not items:
        raise DeploymentError("nothing to deploy: the list of sources is empty")
    sources: list[Source] = []
    for item in items:
        if isinstance(item, bytes | bytearray):
            sources.append(Source(f"<bytes #{len(sources) + 1}>", bytes(item)))
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.name.lower().endswith((".bpmn", ".bpmn20.xml", ".dmn"))
            )
            if not files:
                raise DeploymentError(f"{path}: the folder holds no .bpmn or .dmn files")
            sources.extend(_read(p) for p in files)
        elif path.is_file():
            sources.append(_read(path))
        else:
            raise DeploymentError(f"{path}: no such file or folder")
        if len(sources) > MAX_FILES:
            raise DeploymentError(f"more than {MAX_FILES} files in one deployment")
    return sources


def _read(path: Path) -> Source:
    size = path.stat().st_size
    if size > MAX_SOURCE_BYTES:
        raise DeploymentError(f"{path}: {size} bytes is over the limit of {MAX_SOURCE_BYTES}")
    return Source(str(path), path.read_bytes())


def deployment_digest(sources: Iterable[Source]) -> str:
    """Same files with the same content -> same digest, whatever their order."""
    parts = sorted(f"{s.name}\0{s.digest}" for s in sources)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
