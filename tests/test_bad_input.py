"""BPMN is untrusted input: every bad source is a clear DeploymentError and nothing is stored."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from engine import DeploymentError, ProcessEngine
from tests.bpmnbuild import process
from tests.test_core import table_counts

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
<bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s" name="&xxe;" /></bpmn:process>
</bpmn:definitions>"""

REMOTE_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE definitions SYSTEM "http://127.0.0.1:9/evil.dtd">
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" />"""

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode()
        for i in range(1, 10)
    )
    + b"]>\n<lolz>&lol9;</lolz>"
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<bpmn:definitions", "not well-formed"),
        (b"<html><body>hello</body></html>", "not a BPMN 2.0 document"),
        (XXE, "DOCTYPE"),
        (REMOTE_DTD, "DOCTYPE"),
        (BILLION_LAUGHS, "DOCTYPE"),
    ],
    ids=[
        "empty",
        "blank",
        "truncated",
        "html",
        "xxe",
        "remote-dtd",
        "billion-laughs",
    ],
)
def test_bad_sources_are_refused_and_store_nothing(
    eng: ProcessEngine, content: bytes, message: str
) -> None:
    eng.register_handler("a", lambda ctx: None)
    before = table_counts(eng)
    started = time.perf_counter()
    with pytest.raises(DeploymentError, match=message) as err:
        eng.deploy(content)
    assert time.perf_counter() - started < 1.0  # refused outright, never expanded
    assert "<bytes>" in str(err.value)
    assert table_counts(eng) == before


def test_missing_file_and_empty_folder(eng: ProcessEngine, tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="no such file"):
        eng.deploy(tmp_path / "nope.bpmn")
    with pytest.raises(DeploymentError, match="holds no .bpmn"):
        eng.deploy(tmp_path)
    with pytest.raises(DeploymentError, match="list of sources is empty"):
        eng.deploy([])


def test_file_error_names_the_file(eng: ProcessEngine, tmp_path: Path) -> None:
    good = tmp_path / "good.bpmn"
    bad = tmp_path / "bad.bpmn"
    good.write_bytes(process("good"))
    bad.write_bytes(b"<not-closed>")
    before = table_counts(eng)
    with pytest.raises(DeploymentError, match="bad.bpmn"):
        eng.deploy([good, bad])
    assert table_counts(eng) == before  # the good file was not deployed either


def test_refusal_names_file_element_and_reason(eng: ProcessEngine) -> None:
    bpmn = process(
        "p",
        '<bpmn:complexGateway id="Gw" />',
        '<bpmn:endEvent id="E1" />',
        '<bpmn:endEvent id="E2" />',
        end="",
        flows=[("StartEvent_1", "Gw"), ("Gw", "E1"), ("Gw", "E2")],
    )
    with pytest.raises(DeploymentError, match="<bytes>: element 'Gw': complex gateways"):
        eng.deploy(bpmn)


def test_exclusive_flows_without_condition_are_taken_in_order(eng: ProcessEngine) -> None:
    # Camunda takes the first flow without a condition (in document order); so do we.
    bpmn = process(
        "p",
        '<bpmn:exclusiveGateway id="Gw" />',
        '<bpmn:endEvent id="E1" />',
        '<bpmn:endEvent id="E2" />',
        end="",
        flows=[("StartEvent_1", "Gw"), ("Gw", "E1"), ("Gw", "E2")],
    )
    eng.deploy(bpmn)
    inst = eng.start("p")
    assert inst.state == "completed"
    assert "E1" in [h.activity_id for h in eng.history(inst.id)]
    assert "E2" not in [h.activity_id for h in eng.history(inst.id)]


def test_service_task_without_implementation(eng: ProcessEngine) -> None:
    before = table_counts(eng)
    with pytest.raises(
        DeploymentError, match="task 'A' has no implementation: register a handler under its id 'A'"
    ):
        eng.deploy(process("p", '<bpmn:serviceTask id="A" />'))
    assert table_counts(eng) == before


def test_service_task_without_implementation_calls_the_handler_named_by_its_id(
    eng: ProcessEngine,
) -> None:
    # bpmn.io has no field for an implementation: the element id names the handler.
    eng.register_handler("A", lambda ctx: {"seen": ctx.activity_id})
    eng.deploy(process("p", '<bpmn:serviceTask id="A" />'))
    inst = eng.start("p")
    assert inst.state == "completed"
    assert inst.variables["seen"] == "A"


def test_bad_retry_cycle_is_a_deployment_error(eng: ProcessEngine) -> None:
    eng.register_handler("a", lambda ctx: None)
    bpmn = process(
        "p",
        '<bpmn:serviceTask id="A" spillway:handler="a"><bpmn:extensionElements>'
        "<camunda:failedJobRetryTimeCycle>every now and then</camunda:failedJobRetryTimeCycle>"
        "</bpmn:extensionElements></bpmn:serviceTask>",
    )
    with pytest.raises(DeploymentError, match="task 'A': bad retry configuration"):
        eng.deploy(bpmn)


def test_a_process_that_is_not_executable_is_skipped_with_a_note(
    eng: ProcessEngine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = (
        b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        b'id="d"><bpmn:process id="draft" isExecutable="false" /></bpmn:definitions>'
    )
    # Listen on the deploy logger itself: other tests may have reconfigured logging
    # (Alembic's fileConfig, the CLI's --log-format), which must not hide the note here.
    deploy_log = logging.getLogger("spillway.deploy")
    monkeypatch.setattr(deploy_log, "disabled", False)
    monkeypatch.setattr(deploy_log, "handlers", [*deploy_log.handlers, caplog.handler])
    monkeypatch.setattr(deploy_log, "level", logging.WARNING)
    dep = eng.deploy(draft)
    assert dep.process_keys == ()
    assert "process 'draft' is not executable" in caplog.text
    mixed = process("runs").replace(
        b"</bpmn:definitions>",
        b'<bpmn:process id="draft2" isExecutable="false" /></bpmn:definitions>',
    )
    assert eng.deploy(mixed).process_keys == ("runs",)
    assert "process 'draft2' is not executable" in caplog.text
