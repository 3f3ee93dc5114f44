"""Hostile input at the public API: a clear EngineError naming the argument, the same on SQLite
and PostgreSQL, and nothing written (issue 19, items 2-5; the limits are in docs/security.md)."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import (
    DeploymentError,
    EngineError,
    InvalidArgument,
    InvalidVariables,
    ProcessEngine,
)
from engine.core import limits
from tests.bpmnbuild import process, user
from tests.test_core import table_counts

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
# The entity is used in element content, which lxml would expand silently (no error) if the
# DOCTYPE got past the guard.
XXE = f"""<?xml version="1.0" encoding="{{enc}}"?>
<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>
<bpmn:definitions xmlns:bpmn="{BPMN}" id="d">
<bpmn:process id="p" isExecutable="true"><bpmn:documentation>&xxe;</bpmn:documentation>
<bpmn:startEvent id="s" /></bpmn:process></bpmn:definitions>"""

ENCODINGS = [
    ("utf-16-le", True),
    ("utf-16-be", True),
    ("utf-16-le", False),
    ("utf-16-be", False),
    ("utf-32-le", True),
    ("utf-32-be", True),
    ("utf-32-le", False),
    ("utf-32-be", False),
    ("utf-8", True),
]
BOMS = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}


def _encoded(text: str, encoding: str, bom: bool) -> bytes:
    declared = encoding.split("-le")[0].split("-be")[0].upper()
    body = text.replace("{enc}", declared).encode(encoding)
    return (BOMS[encoding] if bom else b"") + body


def test_doctype_is_refused_in_every_encoding(eng: ProcessEngine) -> None:
    before = table_counts(eng)
    for encoding, bom in ENCODINGS:
        with pytest.raises(DeploymentError, match="DOCTYPE and ENTITY declarations are not"):
            eng.deploy(_encoded(XXE, encoding, bom))
    assert table_counts(eng) == before


def test_a_clean_document_deploys_in_every_encoding(eng: ProcessEngine) -> None:
    clean = process("p", user("Überprüfen")).decode()
    clean = clean.replace('encoding="UTF-8"', 'encoding="{enc}"')
    for encoding, bom in ENCODINGS:
        eng.deploy(_encoded(clean, encoding, bom))
        inst = eng.start("p")
        assert inst.waiting_at == ["Überprüfen"], (encoding, bom)


def test_undecodable_or_unsupported_encodings_are_refused(eng: ProcessEngine) -> None:
    with pytest.raises(DeploymentError, match="not valid utf-8"):
        eng.deploy(process("p", user("U")).replace(b"U", b"\xff\xfe\xfd", 1)[:-10] + b"\xff")
    utf7 = process("p", user("U")).replace(b'encoding="UTF-8"', b'encoding="UTF-7"')
    with pytest.raises(DeploymentError, match="encoding 'UTF-7' is not supported"):
        eng.deploy(utf7)


NO_ID = f"""<bpmn:definitions xmlns:bpmn="{BPMN}" id="d">
<bpmn:process {{attrs}}><bpmn:startEvent id="s" /></bpmn:process>{{more}}</bpmn:definitions>"""
WITH_ID = '<bpmn:process id="q" isExecutable="true"><bpmn:startEvent id="s2" /></bpmn:process>'


@pytest.mark.parametrize(
    ("attrs", "more", "what"),
    [
        ('isExecutable="true"', "", "has no id"),
        ('isExecutable="true" name="Pool"', WITH_ID, "'Pool' at line 2 has no id"),
        ("", "", "has no id"),  # executable unless it says otherwise
        ('id="" isExecutable="true"', "", 'an empty id (id="")'),
        ('id="  " isExecutable="true"', WITH_ID, "an empty id"),
    ],
    ids=["alone", "beside-one-with-id", "no-isExecutable", "empty", "blank"],
)
def test_a_process_without_id_is_refused(
    eng: ProcessEngine, tmp_path: Path, attrs: str, more: str, what: str
) -> None:
    path = tmp_path / "noid.bpmn"
    path.write_text(NO_ID.replace("{attrs}", attrs).replace("{more}", more))
    before = table_counts(eng)
    with pytest.raises(DeploymentError) as err:
        eng.deploy(path)
    assert str(path) in str(err.value)
    assert "executable process element" in str(err.value) and what in str(err.value)
    assert table_counts(eng) == before


def test_a_process_without_id_that_is_not_executable_is_ignored(eng: ProcessEngine) -> None:
    source = NO_ID.replace("{attrs}", 'isExecutable="false"').replace("{more}", WITH_ID)
    assert eng.deploy(source.encode()).process_keys == ("q",)


@pytest.mark.parametrize(
    "source",
    [5, None, {}, [None], [b"<x/>", 3.5], object(), {"a": 1}.keys()],
    ids=["int", "None", "dict", "list-of-None", "list-with-float", "object", "keys"],
)
def test_deploy_refuses_what_is_no_source(eng: ProcessEngine, source: Any) -> None:
    before = table_counts(eng)
    with pytest.raises(DeploymentError, match=r"deploy\(source(\[\d\])?\): expected a file"):
        eng.deploy(source)
    assert table_counts(eng) == before


def test_deploy_accepts_xml_text_memoryview_and_tuples(eng: ProcessEngine) -> None:
    xml = process("p", user("U"))
    # Text longer than any file name: XML text, not a path (OSError: File name too long before).
    text = xml.decode() + " " * 5000
    assert eng.deploy(text).process_keys == ("p",)
    # The same content as bytes: the process keeps its version.
    assert eng.deploy(memoryview(text.encode())).versions == {"p": 1}
    assert eng.deploy((text.encode(),)).versions == {"p": 1}
    with pytest.raises(DeploymentError, match="no such file or folder"):
        eng.deploy("x" * 200)  # a str that is no XML is a path
    with pytest.raises(DeploymentError, match="cannot read"):
        eng.deploy("/tmp/" + "x" * 5000)
    with pytest.raises(DeploymentError, match="lone surrogate"):
        eng.deploy(xml.decode().replace("U", "U\ud800", 1))


def test_xml_text_with_another_declared_encoding_deploys(eng: ProcessEngine) -> None:
    text = process("p", user("Größe")).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    eng.deploy(text)
    assert eng.start("p").waiting_at == ["Größe"]


@pytest.fixture
def deployed(eng: ProcessEngine) -> ProcessEngine:
    eng.deploy(process("p", user("U")))
    return eng


HUGE = 10**4999


BAD_CALLS: list[tuple[Callable[[ProcessEngine], object], type[EngineError], str]] = [
    (lambda e: e.start("p", variables={"x": HUGE}), InvalidVariables, "'x'"),
    (lambda e: e.start("p", variables={"x": {"y": [HUGE]}}), InvalidVariables, "'x.y[0]'"),
    (lambda e: e.start("p", variables={"s": "a\x00b"}), InvalidVariables, "NUL"),
    (lambda e: e.start("p", variables={"s": "bk\ud800"}), InvalidVariables, "surrogate"),
    (lambda e: e.start("p", variables={"a\x00": 1}), InvalidVariables, "NUL"),
    (lambda e: e.start("p", variables={"x": {"k\x00": 1}}), InvalidVariables, "NUL"),
    (lambda e: e.start("p", business_key=object()), InvalidArgument, "business_key"),
    (lambda e: e.start("p", business_key="bk\ud800"), InvalidArgument, "business_key"),
    (lambda e: e.start("p", business_key=5), InvalidArgument, "business_key"),
    (lambda e: e.start("p", business_key="a\x00b"), InvalidArgument, "business_key"),
    (lambda e: e.start("p", business_key="x" * 10_000_000), InvalidArgument, "business_key"),
    (lambda e: e.start("p", business_key=""), InvalidArgument, "business_key"),
    (lambda e: e.start(5), InvalidArgument, "process_key"),
    (lambda e: e.start("p" * 100_000), InvalidArgument, "process_key"),
    (lambda e: e.correlate_message("m", correlation=[1]), InvalidArgument, "correlation"),
    (lambda e: e.correlate_message(5), InvalidArgument, "name"),
    (lambda e: e.correlate_message("m\x00"), InvalidArgument, "name"),
    (lambda e: e.correlate_message("m", business_key=5), InvalidArgument, "business_key"),
    (lambda e: e.signal(["s"]), InvalidArgument, "name"),
    (lambda e: e.retry("some-id", retries="x"), InvalidArgument, "retries"),
    (lambda e: e.retry("some-id", retries=2**40), InvalidArgument, "retries"),
    (lambda e: e.retry(5), InvalidArgument, "job_or_incident_id"),
    (lambda e: e.execute_job(None), InvalidArgument, "job_id"),
    (lambda e: e.get_instance(5), InvalidArgument, "instance_id"),
    (lambda e: e.get_instance("a\x00"), InvalidArgument, "instance_id"),
    (lambda e: e.history(5), InvalidArgument, "instance_id"),
    (lambda e: e.complete_task(5, "U"), InvalidArgument, "instance_id"),
    (lambda e: e.instances(business_key=5), InvalidArgument, "business_key"),
    (lambda e: e.instances(process_key="p\x00"), InvalidArgument, "process_key"),
    (lambda e: e.jobs(5), InvalidArgument, "instance_id"),
    (lambda e: e.external_tasks.complete(5, "w"), InvalidArgument, "task_id"),
    (lambda e: e.external_tasks.complete("t\x00", "w"), InvalidArgument, "task_id"),
    (lambda e: e.external_tasks.complete("t", "w\x00"), InvalidArgument, "worker_id"),
    (lambda e: e.external_tasks.extend_lock(5, "w"), InvalidArgument, "task_id"),
    (lambda e: e.external_tasks.unlock(5), InvalidArgument, "task_id"),
    (lambda e: e.external_tasks.get(5), InvalidArgument, "task_id"),
    (lambda e: e.external_tasks.fetch_and_lock("w", ["t\x00"]), InvalidArgument, "topic"),
    (lambda e: e.external_tasks.fetch_and_lock("w" * 300, ["t"]), InvalidArgument, "worker"),
    (lambda e: e.external_tasks.list(instance_id=5), InvalidArgument, "instance_id"),
    (lambda e: e.deploy(process("p", user("U")), name="n" * 300), InvalidArgument, "name"),
]


def test_bad_arguments_are_named_and_write_nothing(deployed: ProcessEngine) -> None:
    """One test per database for the whole table (an engine per case cost a minute)."""
    before = table_counts(deployed)
    for n, (call, error, argument) in enumerate(BAD_CALLS):
        with pytest.raises(error) as err:
            call(deployed)
        assert argument in str(err.value), (n, str(err.value))
        if isinstance(err.value, InvalidArgument):
            assert err.value.argument is not None and err.value.argument in str(err.value), n
    assert table_counts(deployed) == before


def test_values_at_the_limits_are_stored_and_read_back(deployed: ProcessEngine) -> None:
    key = "k" * limits.MAX_NAME_LENGTH
    big = 10**4299
    inst = deployed.start("p", variables={"big": big, "s": "ünï\U0001f600"}, business_key=key)
    fresh = deployed.get_instance(inst.id)
    assert fresh.business_key == key
    assert fresh.variables == {"big": big, "s": "ünï\U0001f600"}
    assert [i.id for i in deployed.instances(business_key=key)] == [inst.id]


def test_failure_reports_with_nul_characters_are_kept(eng: ProcessEngine) -> None:
    eng.deploy(Path(__file__).parent.parent / "processes" / "example_process.bpmn")
    eng.start("ExampleProcess", variables={"files": ["a"]})
    task = eng.external_tasks.fetch_and_lock("w", topics=["copy"])[0]
    assert eng.external_tasks.handle_failure(task.id, "w", "bad\x00byte", "trace\x00", retries=0)
    [incident] = eng.incidents()
    assert incident.message == "bad\ufffdbyte"
    assert incident.stacktrace == "trace\ufffd"


@pytest.mark.parametrize("length", [limits.MAX_NAME_LENGTH + 1, 100_000])
def test_over_long_process_and_element_ids_are_refused(eng: ProcessEngine, length: int) -> None:
    pid = "p" * length
    xml = process("p", user("U")).replace(b'id="p"', f'id="{pid}"'.encode())
    before = table_counts(eng)
    with pytest.raises(DeploymentError, match=f"is {length} characters long; the limit is 255"):
        eng.deploy(xml)
    with pytest.raises(DeploymentError, match="the limit is 255"):
        eng.deploy(process("p", user("U" * length)))
    assert table_counts(eng) == before
