"""The operator console in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
a process's diagram with its waiting activity highlighted, an incident seen and retried until
the instance completes, a cancel, a user task claimed and completed, a stale page's action
refused with a clear message, times in the browser's zone, live updates without reload.

The server is uvicorn in a thread over an engine on a SQLite file (and PostgreSQL for the
incident scenario), with a job executor running. Each page visited is screenshotted into
``$SPILLWAY_ARTIFACTS/console`` (default: pytest's tmp directory); docs/img holds a few.
Without chromium (or Playwright) the tests skip with the reason, unless
SPILLWAY_REQUIRE_SERVICES=1, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, Served, serve, wait_for

from engine import ProcessEngine, RetryPolicy
from engine.core.clock import SystemClock

REQUIRE = os.environ.get("SPILLWAY_REQUIRE_SERVICES") == "1"
TIMEOUT_MS = 15_000

APPROVAL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_approval" targetNamespace="t">
  <bpmn:process id="Approval" name="Approve a request" isExecutable="true">
    <bpmn:startEvent id="Received" name="Request received"/>
    <bpmn:sequenceFlow id="f1" sourceRef="Received" targetRef="Approve"/>
    <bpmn:userTask id="Approve" name="Approve request" camunda:candidateGroups="clerks"/>
    <bpmn:sequenceFlow id="f2" sourceRef="Approve" targetRef="Done"/>
    <bpmn:endEvent id="Done" name="Decided"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="dia_approval">
    <bpmndi:BPMNPlane id="plane_approval" bpmnElement="Approval">
      <bpmndi:BPMNShape id="s_Received" bpmnElement="Received">
        <dc:Bounds x="160" y="100" width="36" height="36"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="s_Approve" bpmnElement="Approve">
        <dc:Bounds x="260" y="78" width="100" height="80"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="s_Done" bpmnElement="Done">
        <dc:Bounds x="430" y="100" width="36" height="36"/></bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="e_f1" bpmnElement="f1">
        <di:waypoint x="196" y="118"/><di:waypoint x="260" y="118"/></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="e_f2" bpmnElement="f2">
        <di:waypoint x="360" y="118"/><di:waypoint x="430" y="118"/></bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""

PAYMENT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_payment" targetNamespace="t">
  <bpmn:process id="Payment" name="Take a payment" isExecutable="true">
    <bpmn:startEvent id="Ordered" name="Order placed"/>
    <bpmn:sequenceFlow id="p1" sourceRef="Ordered" targetRef="Charge"/>
    <bpmn:serviceTask id="Charge" name="Charge card" camunda:class="charge-card"/>
    <bpmn:sequenceFlow id="p2" sourceRef="Charge" targetRef="Paid"/>
    <bpmn:endEvent id="Paid" name="Paid"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="dia_payment">
    <bpmndi:BPMNPlane id="plane_payment" bpmnElement="Payment">
      <bpmndi:BPMNShape id="s_Ordered" bpmnElement="Ordered">
        <dc:Bounds x="160" y="100" width="36" height="36"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="s_Charge" bpmnElement="Charge">
        <dc:Bounds x="260" y="78" width="100" height="80"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="s_Paid" bpmnElement="Paid">
        <dc:Bounds x="430" y="100" width="36" height="36"/></bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="e_p1" bpmnElement="p1">
        <di:waypoint x="196" y="118"/><di:waypoint x="260" y="118"/></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="e_p2" bpmnElement="p2">
        <di:waypoint x="360" y="118"/><di:waypoint x="430" y="118"/></bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (SPILLWAY_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _unavailable("chromium not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("SPILLWAY_ARTIFACTS")
    where = Path(root) / "console" if root else tmp_path_factory.mktemp("console-screens")
    where.mkdir(parents=True, exist_ok=True)
    return where


class Handlers:
    """The payment handler, broken until the test fixes it."""

    def __init__(self) -> None:
        self.broken = True
        self.calls = 0

    def charge(self, ctx: Any) -> dict[str, Any]:
        self.calls += 1
        if self.broken:
            raise ConnectionError("card gateway down")
        return {"charged": ctx.variables["amount"]}


@pytest.fixture
def handlers() -> Handlers:
    return Handlers()


def _console(url: str, handlers: Handlers) -> Iterator[Served]:
    eng = ProcessEngine(
        url, clock=SystemClock(), retry_policy=RetryPolicy(retries=1, initial_delay=0.05, jitter=0)
    )
    eng.register_handler("charge-card", handlers.charge)
    eng.deploy([APPROVAL.encode(), PAYMENT.encode()])
    executor = eng.job_executor(workers=1, max_idle_wait=0.2)
    executor.start()
    served = serve(eng)
    try:
        yield served
    finally:
        served.client.close()
        served.stop()
        executor.stop(timeout=10)
        eng.close()


@pytest.fixture
def console(tmp_path: Path, handlers: Handlers) -> Iterator[Served]:
    """The console over a SQLite file."""
    yield from _console(f"sqlite:///{tmp_path / 'console.db'}", handlers)


@pytest.fixture
def console_on(db_url: str, handlers: Handlers) -> Iterator[Served]:
    """The console over the test database: SQLite and PostgreSQL."""
    yield from _console(db_url, handlers)


def root(s: Served) -> str:
    return s.base.removesuffix("/engine-rest")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        timezone_id="Asia/Tokyo",
        viewport={"width": 1200, "height": 900},
    )
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    pg.on("dialog", lambda dialog: dialog.accept())
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # A console error would be, say, a Content-Security-Policy violation.
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield pg
    context.close()
    assert errors == [], f"script errors on the page: {errors}"


def flash(pg: Any) -> str:
    text: str = pg.locator("#flash").inner_text()
    return text


def test_process_page_draws_the_diagram_with_the_waiting_activity_highlighted(
    console: Served, page: Any, shots: Path
) -> None:
    eng = console.engine
    for n in range(2):
        eng.start("Approval", business_key=f"REQ-{n}")
    page.goto(root(console) + "/")
    row = page.locator('tr[data-key="Approval"]')
    assert row.locator("td.running").inner_text() == "2"
    page.screenshot(path=shots / "processes.png", full_page=True)

    row.locator("a", has_text="Approval").first.click()
    page.wait_for_selector('#diagram[data-ready="1"]')
    waiting = page.locator('g.djs-element.sw-active[data-element-id="Approve"]')
    assert waiting.count() == 1
    assert page.locator('.sw-badge.waiting[data-activity="Approve"]').inner_text() == "2"
    assert page.locator('g.djs-element.sw-active[data-element-id="Done"]').count() == 0
    # The licence's watermark stays.
    assert page.locator("a.bjs-powered-by").count() == 1
    page.screenshot(path=shots / "process.png", full_page=True)

    # Another instance starts: the badge follows without a reload.
    page.evaluate("window.notReloaded = true")
    eng.start("Approval", business_key="REQ-2")
    page.wait_for_selector('.sw-badge.waiting[data-activity="Approve"]:text-is("3")')
    assert page.evaluate("window.notReloaded") is True

    page.click("text=all instances")
    rows = page.locator("tr[data-instance]")
    assert rows.count() == 3
    assert rows.first.locator("td").nth(2).inner_text() == "REQ-2"  # newest first
    page.screenshot(path=shots / "instances.png", full_page=True)


def test_incident_seen_then_retried_after_the_fix_and_the_instance_completes(
    console_on: Served, page: Any, handlers: Handlers, shots: Path
) -> None:
    eng = console_on.engine
    inst = eng.start("Payment", variables={"amount": 42}, business_key="ORD-7")
    wait_for(lambda: eng.incidents(inst.id), 20, "the incident to open")

    page.goto(root(console_on) + "/incidents")
    group = page.locator('.group[data-activity="Charge"]')
    assert "card gateway down" in group.locator("h3").inner_text()
    assert "ORD-7" in group.inner_text()
    page.locator("details summary").first.click()
    assert "ConnectionError" in page.locator("details pre").first.inner_text()
    page.screenshot(path=shots / "incidents.png", full_page=True)

    handlers.broken = False
    group.locator("input[data-select-all]").check()
    page.fill('input[name="retries"]', "2")
    page.click("text=Retry selected")
    assert "Retrying" in flash(page)

    page.goto(root(console_on) + f"/instances/{inst.id}")
    page.wait_for_selector("#instance-state .state.completed")
    assert eng.get_instance(inst.id).variables["charged"] == 42
    assert eng.incidents(inst.id) == []
    assert "Charge" in page.locator("#history").inner_text()
    page.screenshot(path=shots / "instance-completed.png", full_page=True)


def test_cancel_an_instance(console: Served, page: Any, shots: Path) -> None:
    eng = console.engine
    inst = eng.start("Approval", variables={"amount": 5}, business_key="REQ-9")
    page.goto(root(console) + f"/instances/{inst.id}")
    page.wait_for_selector('#diagram[data-ready="1"]')
    assert page.locator('g.djs-element.sw-active[data-element-id="Approve"]').count() == 1
    page.screenshot(path=shots / "instance.png", full_page=True)

    page.fill('input[name="reason"]', "customer withdrew")
    page.click("text=Cancel instance")
    assert "cancelled" in flash(page)
    assert page.locator("#instance-state").inner_text().startswith("terminated")
    ended = eng.get_instance(inst.id)
    assert ended.state == "terminated"
    assert eng.tasks(instance_id=inst.id) == []
    assert "customer withdrew" in (eng.history(inst.id)[-1].error or "")


def test_claim_and_complete_a_user_task(console: Served, page: Any, shots: Path) -> None:
    eng = console.engine
    inst = eng.start("Approval", business_key="REQ-11")
    page.goto(root(console) + "/tasks")
    task = page.locator('.task[data-activity="Approve"]')
    assert "REQ-11" in task.inner_text()
    assert task.locator('input[name="user"]').input_value() == USER  # the signed-in user
    task.locator("button", has_text="Claim").click()
    assert f"claimed by {USER}" in flash(page)
    assert eng.tasks(instance_id=inst.id)[0].assignee == USER
    task = page.locator('.task[data-activity="Approve"]')
    assert task.locator(".assignee").inner_text() == USER

    task.locator("textarea").fill('{"approved": true, "note": "looks fine"}')
    page.screenshot(path=shots / "tasks.png", full_page=True)
    task.locator("button", has_text="Complete").click()
    assert "completed" in flash(page)
    done = eng.get_instance(inst.id)
    assert done.state == "completed"
    assert done.variables == {"approved": True, "note": "looks fine"}

    # Bad JSON is refused with a message naming the problem, and nothing moves.
    other = eng.start("Approval")
    page.goto(root(console) + "/tasks")
    task = page.locator('.task[data-activity="Approve"]')
    task.locator("textarea").fill("{approved: yes}")
    task.locator("button", has_text="Complete").click()
    assert "Nothing was changed" in flash(page) and "JSON object" in flash(page)
    assert eng.get_instance(other.id).state == "active"


def test_a_stale_page_gets_a_clear_message_and_changes_nothing(console: Served, page: Any) -> None:
    eng = console.engine
    inst = eng.start("Approval", variables={"limit": 100})
    page.goto(root(console) + f"/instances/{inst.id}")
    field = page.locator('tr[data-variable="limit"] input[name="value"]')
    field.fill("250")  # the operator is typing: the live update leaves this form alone
    eng.set_variables(inst.id, {"limit": 120})  # meanwhile someone else changes it
    page.locator('tr[data-variable="limit"] button', has_text="Save").click()
    message = flash(page)
    assert "Nothing was changed" in message and "out of date" in message
    assert "changed since the page was shown" in message
    assert eng.get_instance(inst.id).variables["limit"] == 120
    # The page now shows the current state, and acting on it works.
    assert page.locator('tr[data-variable="limit"] input[name="value"]').input_value() == "120"
    page.locator('tr[data-variable="limit"] input[name="value"]').fill("250")
    page.locator('tr[data-variable="limit"] button', has_text="Save").click()
    assert "set to 250" in flash(page)
    assert eng.get_instance(inst.id).variables["limit"] == 250

    # The instance ends while the page still offers to cancel it.
    page.locator('input[name="reason"]').fill("too late")
    eng.complete_task(inst.id, "Approve")
    page.click("text=Cancel instance")
    assert "has ended (completed)" in flash(page)
    assert eng.get_instance(inst.id).state == "completed"


def test_times_are_shown_in_the_browsers_zone_and_pages_update_live(
    console: Served, page: Any
) -> None:
    eng = console.engine
    inst = eng.start("Approval")
    page.goto(root(console) + f"/instances/{inst.id}")
    stamp = page.locator("#summary time").first
    iso = stamp.get_attribute("datetime") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", iso)
    shown = page.evaluate("(iso) => new Date(iso).toLocaleString()", iso)
    assert stamp.inner_text() == shown
    tokyo = page.evaluate(
        "(iso) => new Date(iso).toLocaleString('en-US', {timeZone: 'Asia/Tokyo'})", iso
    )
    assert page.evaluate("(iso) => new Date(iso).toLocaleString('en-US')", iso) == tokyo

    page.evaluate("window.notReloaded = true")
    eng.complete_task(inst.id, "Approve")
    page.wait_for_selector("#instance-state .state.completed")
    assert page.evaluate("window.notReloaded") is True
    assert page.locator('g.djs-element.sw-active[data-element-id="Approve"]').count() == 0


def test_the_console_asks_for_the_apis_credentials(console: Served, browser: Any) -> None:
    from playwright.sync_api import Error

    for credentials in (None, {"username": USER, "password": "wrong"}):
        context = browser.new_context(http_credentials=credentials)
        try:
            answer = context.request.get(root(console) + "/instances")
            assert answer.status == 401
            assert answer.headers["www-authenticate"] == 'Basic realm="spillway"'
            pg = context.new_page()
            if credentials is None:
                # Headless, the browser cannot ask anyone for credentials: it gives up.
                with pytest.raises(Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
                    pg.goto(root(console) + "/instances")
            else:
                response = pg.goto(root(console) + "/instances")
                assert response is not None and response.status == 401
                assert "Instances" not in pg.content()
        finally:
            context.close()
