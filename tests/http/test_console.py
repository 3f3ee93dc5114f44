"""The operator console over HTTP, without a browser: CSRF refusals, authentication, keyset
paging and filters of the instance list (SQLite and PostgreSQL), the indexes its pages use,
and stale actions refused with nothing changed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import AUTH, Served, serve

from engine import ProcessEngine
from engine.core.clock import SystemClock
from engine.http.console import queries, views
from engine.storage import schema as t

WAIT = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">'
    '<bpmn:process id="Wait" isExecutable="true"><bpmn:startEvent id="s"/>'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="Review"/>'
    '<bpmn:userTask id="Review"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="Review" targetRef="e"/><bpmn:endEvent id="e"/>'
    "</bpmn:process></bpmn:definitions>"
)
FAIL = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d2" targetNamespace="t">'
    '<bpmn:process id="Fail" isExecutable="true"><bpmn:startEvent id="s"/>'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="Boom"/>'
    '<bpmn:serviceTask id="Boom" camunda:class="boom">'
    "<bpmn:extensionElements>"
    "<camunda:failedJobRetryTimeCycle>R1/PT0S</camunda:failedJobRetryTimeCycle>"
    "</bpmn:extensionElements></bpmn:serviceTask>"
    '<bpmn:sequenceFlow id="f2" sourceRef="Boom" targetRef="e"/><bpmn:endEvent id="e"/>'
    "</bpmn:process></bpmn:definitions>"
)


def _boom(ctx: object) -> None:
    raise RuntimeError("always broken")


@pytest.fixture
def site(db_url: str) -> Iterator[Served]:
    eng = ProcessEngine(db_url, clock=SystemClock())
    eng.register_handler("boom", _boom)
    eng.deploy([WAIT.encode(), FAIL.encode()])
    served = serve(eng)
    yield served
    served.client.close()
    served.stop()
    eng.close()


def browser_client(s: Served) -> httpx.Client:
    """A client like the browser: credentials, cookies kept, redirects not followed."""
    return httpx.Client(base_url=s.base.removesuffix("/engine-rest"), auth=AUTH, timeout=30)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def flash_after(client: httpx.Client, response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    found = re.search(r'<div class="flash (\w+)"[^>]*>([^<]*)</div>', page.text)
    assert found, "no outcome shown"
    return f"{found.group(1)}: {found.group(2)}"


def test_actions_without_the_csrf_token_or_from_another_site_are_refused(site: Served) -> None:
    eng = site.engine
    inst = eng.start("Wait")
    with browser_client(site) as client:
        page = client.get(f"/instances/{inst.id}")
        assert page.status_code == 200
        token = csrf_of(page.text)
        assert client.cookies.get("spillway_csrf") == token
        cancel = f"/instances/{inst.id}/cancel"
        attempts = [
            ({"rev": "1"}, {}),  # no token at all
            ({"csrf": "x" * 43, "rev": "1"}, {}),  # a wrong one
            ({"csrf": token, "rev": "1"}, {"origin": "http://evil.example"}),
        ]
        for form, headers in attempts:
            refused = client.post(cancel, data=form, headers=headers)
            assert refused.status_code == 403
            assert "Nothing was changed" in refused.text and "CSRF" in refused.text
        # A request that brings the token but not the cookie (another site cannot read it).
        bare = httpx.post(
            f"{site.base.removesuffix('/engine-rest')}{cancel}",
            data={"csrf": token, "rev": "1"},
            auth=AUTH,
        )
        assert bare.status_code == 403
        assert eng.get_instance(inst.id).state == "active"
        done = client.post(cancel, data={"csrf": token, "rev": "1"})
        assert flash_after(client, done).startswith("ok:")
        assert eng.get_instance(inst.id).state == "terminated"


def test_every_page_and_action_needs_the_apis_credentials(site: Served) -> None:
    root = site.base.removesuffix("/engine-rest")
    inst = site.engine.start("Wait")
    for method, path in [
        ("GET", "/"),
        ("GET", f"/instances/{inst.id}"),
        ("GET", "/static/console/console.js"),
        ("POST", f"/instances/{inst.id}/cancel"),
        ("POST", "/retry"),
    ]:
        answer = httpx.request(method, root + path)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"] == 'Basic realm="spillway"'
    token = httpx.get(root + "/", headers={"authorization": "Bearer nope"})
    assert token.status_code == 401
    assert site.engine.get_instance(inst.id).state == "active"


def test_stale_actions_change_nothing(site: Served) -> None:
    eng = site.engine
    inst = eng.start("Wait", variables={"n": 1})
    with browser_client(site) as client:
        token = csrf_of(client.get(f"/instances/{inst.id}").text)
        rev = str(eng.store.instance(inst.id)["rev"])  # type: ignore[index]
        eng.set_variables(inst.id, {"n": 2})  # someone else, after the page was shown
        for verb, extra in [
            ("variables", {"name": "n", "value": "3"}),
            ("suspend", {}),
            ("cancel", {}),
            ("modify", {"cancel": "Review"}),
        ]:
            answer = client.post(
                f"/instances/{inst.id}/{verb}", data={"csrf": token, "rev": rev, **extra}
            )
            message = flash_after(client, answer)
            assert message.startswith("error: Nothing was changed"), message
            assert "changed since the page was shown" in message
        now = eng.get_instance(inst.id)
        assert (now.state, now.suspended, now.variables, now.waiting_at) == (
            "active",
            False,
            {"n": 2},
            ["Review"],
        )

        # A task completed meanwhile: claiming it from the old page is refused.
        task = eng.tasks(instance_id=inst.id)[0]
        eng.complete_task(inst.id, "Review")
        answer = client.post(f"/tasks/{task.id}/claim", data={"csrf": token, "user": "ann"})
        assert "no longer open" in flash_after(client, answer)

        # An incident retried by someone else: the old page's retry does nothing.
        failing = eng.start("Fail")
        eng.run_jobs()
        incident = eng.incidents(failing.id)[0]
        eng.retry(incident.id)
        answer = client.post("/retry", data={"csrf": token, "id": incident.id, "retries": "1"})
        assert "was resolved meanwhile" in flash_after(client, answer)
        assert eng.store.job(incident.job_id)["retries_left"] == 1  # type: ignore[arg-type,index]


def test_instance_actions_go_through_the_verbs(site: Served) -> None:
    eng = site.engine
    inst = eng.start("Wait", variables={"n": 1, "gone": True}, business_key="K-1")
    with browser_client(site) as client:
        page = client.get(f"/instances/{inst.id}")
        token = csrf_of(page.text)
        assert '<option value="Review">' in page.text  # the modification form's choices

        def act(verb: str, **form: str) -> str:
            rev = str(eng.store.instance(inst.id)["rev"])  # type: ignore[index]
            answer = client.post(
                f"/instances/{inst.id}/{verb}", data={"csrf": token, "rev": rev, **form}
            )
            return flash_after(client, answer)

        assert act("variables", name="n", value='{"deep": [1, 2]}').startswith("ok:")
        assert act("variables", name="gone", remove="1").startswith("ok:")
        assert eng.get_instance(inst.id).variables == {"n": {"deep": [1, 2]}}
        bad = act("variables", name="n", value="{nope")
        assert bad.startswith("error: Nothing was changed") and "must be JSON" in bad
        assert act("suspend").startswith("ok:")
        assert eng.get_instance(inst.id).suspended is True
        refused = act("variables", name="n", value="2")
        assert "Nothing was changed" in refused and "suspended" in refused
        assert act("activate").startswith("ok:")
        assert act("modify", start_before="e", cancel="Review").startswith("ok:")
        done = eng.get_instance(inst.id)
        assert done.state == "completed"
        assert [h.activity_id for h in eng.history(inst.id)][-1] == "e"
        history = [(c.name, c.operation, c.user) for c in eng.variable_history(inst.id)]
        assert history == [("n", "set", AUTH[0]), ("gone", "removed", AUTH[0])]
        # Filters of the instance list.
        listed = client.get("/instances", params={"business_key": "K-1", "state": "completed"})
        assert inst.id in listed.text
        other = client.get("/instances", params={"business_key": "K-1", "state": "active"})
        assert inst.id not in other.text
        assert client.get("/instances", params={"state": "bogus"}).status_code == 400


def test_retry_takes_a_retries_count_and_says_what_is_wrong(site: Served) -> None:
    eng = site.engine
    failing = [eng.start("Fail") for _ in range(3)]
    eng.run_jobs()
    incidents = [eng.incidents(f.id)[0] for f in failing]
    with browser_client(site) as client:
        page = client.get("/incidents")
        assert 'class="count">3' in page.text and "always broken" in page.text
        token = csrf_of(page.text)
        bad = client.post("/retry", data={"csrf": token, "id": incidents[0].id, "retries": "0"})
        assert "retries must be a whole number" in flash_after(client, bad)
        chosen = [incidents[0].id, incidents[1].id]
        answer = client.post("/retry", data={"csrf": token, "id": chosen, "retries": "3"})
        assert "Retrying 2 incidents/jobs with 3 retries" in flash_after(client, answer)
    assert {i.id for i in eng.incidents()} == {incidents[2].id}
    for inc in incidents[:2]:
        assert eng.store.job(inc.job_id)["retries_left"] == 3  # type: ignore[arg-type,index]


def _bulk_instances(eng: ProcessEngine, count: int, start: datetime) -> None:
    definition = eng.store.latest_definition("Wait")
    assert definition is not None
    rows = [
        {
            "id": uuid.uuid4().hex,
            "definition_id": definition["id"],
            "process_key": "Wait",
            "version": 1,
            "business_key": f"B-{n % 7}",
            "state": "completed" if n % 3 == 0 else "active",
            "waiting_at": [],
            "variables": {"n": n, "tag": f"t{n % 5}"},
            "open_activities": {},
            "data": "{}",
            "format": 1,
            "rev": 1,
            # Every pair of instances shares a start time: the id breaks the tie.
            "created_at": start + timedelta(seconds=n // 2),
            "updated_at": start,
            "ended_at": None,
            "suspended": False,
        }
        for n in range(count)
    ]
    with eng.store.transaction() as conn:
        conn.execute(t.instances.insert(), rows)


def test_instance_list_pages_by_keyset_without_gaps_or_repeats(db_url: str) -> None:
    eng = ProcessEngine(db_url, clock=SystemClock())
    try:
        eng.deploy(WAIT.encode())
        _bulk_instances(eng, 125, datetime(2030, 1, 1, tzinfo=UTC))
        for where, expected in [
            (queries.InstanceFilter(), 125),
            (queries.InstanceFilter(state="completed"), 42),
            (queries.InstanceFilter(business_key="B-3", state="active"), None),
            (queries.InstanceFilter(variable="tag", value="t2"), 25),
            (queries.InstanceFilter(variable="n", value="17"), 1),
        ]:
            seen: list[dict[str, object]] = []
            cursor = None
            while True:
                page = queries.instance_page(eng, where, cursor, size=10)
                seen.extend(page.rows)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            ids = [r["id"] for r in seen]
            assert len(ids) == len(set(ids))
            keys = [(r["created_at"], r["id"]) for r in seen]
            assert keys == sorted(keys, reverse=True)  # newest first, ties by id
            every = eng.store.instances(
                process_key="Wait", state=where.state, business_key=where.business_key
            )
            if where.variable:
                wanted = {"tag": "t2", "n": 17}[where.variable]
                every = [r for r in every if r["variables"][where.variable] == wanted]
            assert set(ids) == {r["id"] for r in every}
            if expected is not None:
                assert len(ids) == expected
    finally:
        eng.close()


def test_instance_list_uses_its_indexes(tmp_path: Path) -> None:
    """Each page of the instance list is an index range scan in (created_at, id) order, also
    deep in the list: the plan SQLite chooses for the statements the page runs."""
    eng = ProcessEngine(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        eng.deploy(WAIT.encode())
        _bulk_instances(eng, 300, datetime(2030, 1, 1, tzinfo=UTC))
        with eng.store.transaction() as conn:
            conn.exec_driver_sql("ANALYZE")
        captured: list[tuple[str, Any]] = []

        def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
            if "FROM sw_instances" in statement:
                captured.append((statement, params))

        cursor = queries.instance_page(eng, queries.InstanceFilter(), None, size=5).next_cursor
        sa.event.listen(eng.store.engine, "before_cursor_execute", capture)
        for where in [
            queries.InstanceFilter(),
            queries.InstanceFilter(process_key="Wait"),
            queries.InstanceFilter(state="active"),
        ]:
            queries.instance_page(eng, where, cursor, size=5)
        sa.event.remove(eng.store.engine, "before_cursor_execute", capture)
        plans = []
        raw = eng.store.engine.raw_connection()
        try:
            for statement, params in captured:
                rows = raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
                plans.append(" | ".join(str(r[-1]) for r in rows))
        finally:
            raw.close()
        assert len(plans) == 3
        for plan, index in zip(
            plans,
            [
                "ix_sw_instances_created",
                "ix_sw_instances_key_created",
                "ix_sw_instances_state_created",
            ],
            strict=True,
        ):
            assert index in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort of the matching rows
    finally:
        eng.close()


def test_safe_back_only_goes_to_this_site() -> None:
    assert views.safe_back("/instances?state=active") == "/instances?state=active"
    for hostile in ["//evil.example/", "https://evil.example/", "javascript:alert(1)", "/\\evil"]:
        assert views.safe_back(hostile) == "/"


def test_pages_escape_what_they_show_and_deployed_documents_never_run(site: Served) -> None:
    eng = site.engine
    inst = eng.start("Wait", variables={"note": "<script>alert(1)</script>"}, business_key="<b>")
    with browser_client(site) as client:
        page = client.get(f"/instances/{inst.id}")
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text or "\\u003c" in page.text
        assert "<strong>&lt;b&gt;</strong>" in page.text  # the business key, as text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        definition_id = eng.store.instance(inst.id)["definition_id"]  # type: ignore[index]
        xml = client.get(f"/diagrams/{definition_id}")
        assert xml.status_code == 200 and xml.content == WAIT.encode()
        assert xml.headers["content-type"].startswith("text/plain")
        assert xml.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in xml.headers["content-security-policy"]
        assert client.get("/diagrams/nope:1:x").status_code == 404


def test_claim_unclaim_and_complete_a_task(site: Served) -> None:
    eng = site.engine
    inst = eng.start("Wait", business_key="T-1")
    task = eng.tasks(instance_id=inst.id)[0]
    with browser_client(site) as client:
        page = client.get("/tasks")
        assert f'data-task="{task.id}"' in page.text and "T-1" in page.text
        token = csrf_of(page.text)

        def act(verb: str, **form: str) -> str:
            rev = str(eng.store.user_task(task.id)["rev"])  # type: ignore[index]
            answer = client.post(
                f"/tasks/{task.id}/{verb}", data={"csrf": token, "rev": rev, **form}
            )
            return flash_after(client, answer)

        assert act("claim") == f"ok: Task &#39;Review&#39; claimed by {AUTH[0]}."
        assert eng.tasks(assignee=AUTH[0])[0].id == task.id
        assert act("unclaim").startswith("ok:")
        assert act("claim", user="ann").startswith("ok:")
        mine = client.get("/tasks", params={"assignee": "ann"})
        assert f'data-task="{task.id}"' in mine.text
        assert act("complete", variables='{"ok": true}').startswith("ok:")
    done = eng.get_instance(inst.id)
    assert (done.state, done.variables) == ("completed", {"ok": True})
