"""Loading BPMN sources as untrusted XML.

A BPMN file comes from a modeler, a repository or a user upload: it is parsed with entity
resolution, DTD loading and network access off, any DOCTYPE is refused before libxml2 sees it
(that rules out external entities and entity-expansion bombs at once), and size and depth are
bounded.
"""

from __future__ import annotations

import codecs
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
MAX_NAME_LENGTH = 1024  # a source's name (its path) as stored

_DOCTYPE = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
# The encoding pseudo-attribute of the XML declaration (the declaration itself is ASCII).
_DECLARED = re.compile(r"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_DECLARATION_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?)\sencoding\s*=\s*(["'])[^"']*\2""")
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
#: Encodings a BPMN source may declare besides UTF-16/32 (detected from the bytes): UTF-8 and
#: the single-byte ASCII-compatible ones modelers and editors write. Anything else (UTF-7,
#: EBCDIC...) is refused: the DOCTYPE check must read the same characters the parser reads.
_ASCII_COMPATIBLE = frozenset(
    ["utf-8", "ascii", "latin-1"]
    + [f"iso8859-{n}" for n in (*range(1, 12), 13, 14, 15, 16)]
    + [f"cp{n}" for n in range(1250, 1259)]
)


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
    # Decided on the characters, not the bytes: a DOCTYPE in UTF-16 or UTF-32 (with or without
    # a byte-order mark) is no ASCII byte sequence. The parser then reads the same characters,
    # re-encoded as UTF-8, so it cannot decode the bytes differently from this check.
    text = decode(source)
    if _DOCTYPE.search(text):
        raise DeploymentError(
            f"{source.name}: DOCTYPE and ENTITY declarations are not allowed in BPMN sources"
        )
    utf8 = _DECLARATION_ENCODING.sub(r"\1", text, count=1).encode("utf-8")
    try:
        root = etree.fromstring(utf8, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise DeploymentError(f"{source.name}: not well-formed XML: {exc}") from exc
    if root is None:  # pragma: no cover - lxml returns None only for empty input, checked above
        raise DeploymentError(f"{source.name}: the document is empty")
    if root.getroottree().docinfo.doctype:  # pragma: no cover - refused above; a second guard
        raise DeploymentError(f"{source.name}: DOCTYPE declarations are not allowed")
    return root


def decode(source: Source) -> str:
    """The document's characters: the byte-order mark decides, else the first bytes (XML 1.0
    appendix F: UTF-16/32 without a mark), else the declared encoding, else UTF-8."""
    content = source.content
    encoding = None
    for bom, name in _BOMS:
        if content.startswith(bom):
            content, encoding = content[len(bom) :], name
            break
    if encoding is None:
        head = content[:4]
        if head[:3] == b"\0\0\0":
            encoding = "utf-32-be"
        elif head[1:4] == b"\0\0\0":
            encoding = "utf-32-le"
        elif head[:1] == b"\0":
            encoding = "utf-16-be"
        elif head[1:2] == b"\0":
            encoding = "utf-16-le"
    if encoding is None:
        declared = _DECLARED.match(content[:512].decode("latin-1"))
        encoding = "utf-8"
        if declared:
            try:
                encoding = codecs.lookup(declared.group(1)).name
            except LookupError:
                raise DeploymentError(
                    f"{source.name}: unknown encoding '{declared.group(1)}'"
                ) from None
            if encoding not in _ASCII_COMPATIBLE:
                raise DeploymentError(
                    f"{source.name}: encoding '{declared.group(1)}' is not supported for BPMN "
                    "sources (use UTF-8, UTF-16 or UTF-32)"
                )
    try:
        return content.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DeploymentError(
            f"{source.name}: not valid {encoding} at byte {exc.start}: {exc.reason}"
        ) from exc


def is_bpmn(root: etree._Element) -> bool:
    return root.tag == f"{{{BPMN_NS}}}definitions"


def collect_sources(target: object) -> list[Source]:
    """Turn what ``deploy()`` accepts into sources, in a stable order: a path or folder (``str``
    or ``os.PathLike``), XML as bytes (``bytes``, ``bytearray``, ``memoryview``) or as text (a
    ``str`` whose first character after white space is ``<``), or a list or tuple of those.
    Folders contribute ``*.bpmn``, ``*.bpmn20.xml`` and ``*.dmn``. Anything else is a
    DeploymentError naming the argument.
    """
    if isinstance(target, bytes | bytearray | memoryview):
        return [Source("<bytes>", bytes(target))]
    if isinstance(target, str) and _is_xml_text(target):
        return [_text_source("<string>", target)]
    if isinstance(target, list | tuple):
        items, many = list(target), True
    else:
        items, many = [target], False
    if not items:
        raise DeploymentError("nothing to deploy: the list of sources is empty")
    sources: list[Source] = []
    for index, item in enumerate(items):
        argument = f"source[{index}]" if many else "source"
        if isinstance(item, bytes | bytearray | memoryview):
            sources.append(Source(f"<bytes #{len(sources) + 1}>", bytes(item)))
            continue
        if isinstance(item, str) and _is_xml_text(item):
            sources.append(_text_source(f"<string #{len(sources) + 1}>", item))
            continue
        if not isinstance(item, str | os.PathLike):
            raise DeploymentError(
                f"deploy({argument}): expected a file or folder path, XML bytes or XML text"
                f"{' (or a list of them)' if not many else ''}, got {type(item).__name__}"
            )
        sources.extend(_sources_at(item, argument))
        if len(sources) > MAX_FILES:
            raise DeploymentError(f"more than {MAX_FILES} files in one deployment")
    return sources


def _is_xml_text(text: str) -> bool:
    return text.lstrip("\ufeff \t\r\n").startswith("<")


def _text_source(name: str, text: str) -> Source:
    """XML given as text: stored as UTF-8 (the declaration's encoding no longer applies)."""
    body = text.lstrip("\ufeff")
    declared = _DECLARED.match(body[:512])
    if declared and declared.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        body = _DECLARATION_ENCODING.sub(r"\1", body, count=1)
    try:
        return Source(name, body.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise DeploymentError(
            f"{name}: the XML text holds a lone surrogate at position {exc.start}"
        ) from exc


def _sources_at(item: str | os.PathLike[str], argument: str) -> list[Source]:
    try:
        path = Path(item)
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.name.lower().endswith((".bpmn", ".bpmn20.xml", ".dmn"))
            )
            if not files:
                raise DeploymentError(f"{path}: the folder holds no .bpmn or .dmn files")
            return [_read(p) for p in files]
        if path.is_file():
            return [_read(path)]
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, no permission...
        shown = str(item) if len(str(item)) <= 80 else str(item)[:77] + "..."
        raise DeploymentError(f"deploy({argument}): cannot read '{shown}': {exc}") from exc
    shown = str(item) if len(str(item)) <= 200 else str(item)[:197] + "..."
    raise DeploymentError(f"{shown}: no such file or folder")


def _read(path: Path) -> Source:
    if len(str(path)) > MAX_NAME_LENGTH:
        raise DeploymentError(f"{str(path)[:80]}...: a path over {MAX_NAME_LENGTH} characters")
    size = path.stat().st_size
    if size > MAX_SOURCE_BYTES:
        raise DeploymentError(f"{path}: {size} bytes is over the limit of {MAX_SOURCE_BYTES}")
    return Source(str(path), path.read_bytes())


def deployment_digest(sources: Iterable[Source]) -> str:
    """Same files with the same content -> same digest, whatever their order."""
    parts = sorted(f"{s.name}\0{s.digest}" for s in sources)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
