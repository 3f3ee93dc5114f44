"""Hypothesis strategies for hostile input, shared by tests/test_properties.py (bounded, part of
the suite) and benchmarks/fuzz_api.py (the long run). See docs/security.md.

``calls()`` draws one public API call with hostile arguments; ``mutations()`` draws a mutation of
one of the example models in ``processes/``. ``check_call`` applies the property: the call
either succeeds or raises an ``EngineError``, and a failed call leaves every table as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st
from lxml import etree

from engine import EngineError, ProcessEngine
from engine.storage import schema

EXAMPLES = sorted((Path(__file__).parent.parent / "processes").glob("*.bpmn"))

SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "bk\udfff",
    "x" * 256,
    "y" * 5000,
    "<",
    "&amp;",
    "../../etc/passwd",
    "${x}",
    "#{1/0}",
    "' OR 1=1 --",
    "\u202e",
    "p",
    "U",
]

texts = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
)
special_numbers = st.one_of(
    # Built when drawn: hypothesis cannot print an integer of more than 4,300 digits.
    st.sampled_from([5000, 4400]).map(lambda digits: 10**digits),
    st.sampled_from([2**63, -(2**63) - 1, 2**31, float("nan"), float("inf"), -0.0]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    special_numbers,
    st.floats(),
    texts,
    st.binary(max_size=8),
    st.builds(object),
    st.just(Ellipsis),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(texts, st.integers()), inner, max_size=3),
        st.tuples(inner),
        st.sets(st.integers(), max_size=2),
    ),
    max_leaves=8,
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


variables = st.one_of(
    st.none(),
    st.dictionaries(texts, values, max_size=3),
    values,
    st.just({"deep": _nested(80)}),
)
#: An id: an existing one (placeholders resolved by ``Target``) or anything hostile.
ids = st.one_of(st.sampled_from(["<instance>", "<task>", "<job>"]), scalars)
names = st.one_of(st.sampled_from(["p", "U", "copy", "Msg"]), scalars)
counts = st.one_of(st.integers(-3, 5), scalars)


@dataclass
class Target:
    """Ids that exist in the database a fuzzed call runs against."""

    instance: str
    task: str
    job: str

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value in ("<instance>", "<task>", "<job>"):
            return getattr(self, value[1:-1])
        return value


def _call(name: str, *strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(st.just(name), *strategies)


calls = st.one_of(
    _call("start", names, variables, names),
    _call("correlate_message", names, variables, st.one_of(variables, values), names),
    _call("complete_task", ids, names, variables),
    _call("signal", names, variables),
    _call("retry", ids, counts),
    _call("execute_job", ids),
    _call("get_instance", ids),
    _call("instances", names, names, names),
    _call("history", ids),
    _call("jobs", ids),
    _call("incidents", ids),
    _call("deploy", st.one_of(scalars, st.lists(scalars, max_size=2), texts)),
    _call(
        "ext.fetch_and_lock",
        names,
        st.one_of(st.lists(names, max_size=2), scalars),
        counts,
        st.one_of(st.floats(), st.integers(), scalars),
    ),
    _call("ext.complete", ids, names, variables),
    _call(
        "ext.handle_failure",
        ids,
        names,
        texts,
        st.one_of(st.none(), texts),
        counts,
        st.one_of(st.none(), st.floats(), scalars),
    ),
    _call("ext.handle_bpmn_error", ids, names, names, texts, variables),
    _call("ext.extend_lock", ids, names, st.one_of(st.floats(), scalars)),
    _call("ext.unlock", ids),
    _call("ext.list", names, ids),
    _call("tasks", ids, names, names, st.one_of(names, st.lists(names, max_size=2))),
    _call("cancel", ids, texts),
    _call("suspend", ids),
    _call("activate", ids),
    _call("set_variables", ids, variables),
    _call("remove_variables", ids, st.one_of(st.lists(names, max_size=2), scalars)),
    _call("modify", ids, st.one_of(st.lists(names, max_size=2), scalars), st.none()),
    _call("delete_deployment", ids),
)


def invoke(eng: ProcessEngine, call: tuple[Any, ...], target: Target) -> Any:
    name, *args = call
    args = [target.resolve(a) for a in args]
    owner: Any = eng.external_tasks if name.startswith("ext.") else eng
    fn: Callable[..., Any] = getattr(owner, name.removeprefix("ext."))
    return fn(*args)


def snapshot(eng: ProcessEngine) -> dict[str, list[str]]:
    """Every row of every table, as text (the databases of these tests are small)."""
    with eng.store.transaction(write=False) as conn:
        return {
            table.name: sorted(repr(tuple(r)) for r in conn.execute(sa.select(table)))
            for table in schema.metadata.sorted_tables
        }


def check_call(eng: ProcessEngine, fn: Callable[[], Any]) -> bool:
    """The property: success, or an EngineError with every table as it was. True if it
    succeeded. Anything else propagates (and fails the test with its traceback)."""
    before = snapshot(eng)
    try:
        fn()
    except EngineError:
        after = snapshot(eng)
        assert after == before, "a failed call changed the database"
        return False
    return True


# -- model mutations ------------------------------------------------------------------------

HOSTILE_ATTR = [
    "",
    " ",
    "x" * 300,
    "${",
    "#{a.b(}",
    "R-1/PT0S",
    "P99999999Y",
    "-1",
    "1e309",
    "StartEvent_1",
    "Start",
    "<x>",
    "camunda:x",
]


@dataclass(frozen=True)
class Mutation:
    model: int
    kind: str
    index: int
    other: int
    text: str

    def apply(self) -> bytes:
        path = EXAMPLES[self.model % len(EXAMPLES)]
        raw = path.read_bytes()
        if self.kind == "truncate":
            return raw[: self.index % max(len(raw), 1)]
        if self.kind == "utf16":
            return raw.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
        if self.kind == "doctype":
            return raw.replace(
                b"?>", b'?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>', 1
            )
        root = etree.fromstring(raw)
        nodes = [n for n in root.iter() if isinstance(n.tag, str)]
        node = nodes[self.index % len(nodes)]
        other = nodes[self.other % len(nodes)]
        if self.kind == "delete" and node.getparent() is not None:
            node.getparent().remove(node)
        elif self.kind == "attribute":
            keys = list(node.attrib) or ["id"]
            node.set(keys[self.other % len(keys)], self.text)
        elif self.kind == "drop-attribute":
            keys = list(node.attrib)
            if keys:
                del node.attrib[keys[self.other % len(keys)]]
        elif self.kind == "duplicate" and node.getparent() is not None:
            node.getparent().append(etree.fromstring(etree.tostring(node)))
        elif self.kind == "move" and node is not other and node not in other.iterancestors():
            other.append(node)
        elif self.kind == "text":
            node.text = self.text
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


mutations = st.builds(
    Mutation,
    model=st.integers(0, 50),
    kind=st.sampled_from(
        [
            "delete",
            "attribute",
            "drop-attribute",
            "duplicate",
            "move",
            "text",
            "truncate",
            "utf16",
            "doctype",
        ]
    ),
    index=st.integers(0, 10_000),
    other=st.integers(0, 10_000),
    text=st.one_of(st.sampled_from(HOSTILE_ATTR), st.text(alphabet="ab${}#.:-1 ", max_size=8)),
)
