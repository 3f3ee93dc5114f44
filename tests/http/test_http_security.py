"""Authentication, body caps, hardened BPMN parsing, no stack traces, and the refusal to serve
beyond loopback without credentials."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from conftest import PASSWORD, USER, Served, serve

from engine import ProcessEngine
from engine.cli.main import main
from engine.cli.serve import check_exposure, is_loopback
from engine.core.errors import EngineError
from engine.http.auth import Credentials
from engine.http.limits import Limits


def test_requests_without_or_with_wrong_credentials_get_401(served: Served) -> None:
    bare = httpx.get(f"{served.base}/version")
    assert bare.status_code == 401
    assert bare.headers["content-type"] == "application/json"
    assert bare.headers["www-authenticate"].startswith("Basic")
    assert bare.json()["type"] == "AuthenticationException"
    wrong = httpx.get(f"{served.base}/version", auth=(USER, PASSWORD + "x"))
    assert wrong.status_code == 401
    garbage = httpx.get(f"{served.base}/version", headers={"authorization": "Basic !!!"})
    assert garbage.status_code == 401
    assert httpx.get(f"{served.base}/version", auth=(USER, PASSWORD)).status_code == 200
    # Nothing behind the prefix is open either.
    assert httpx.post(f"{served.base}/external-task/fetchAndLock", json={}).status_code == 401


def test_bearer_token(http_engine: ProcessEngine) -> None:
    s = serve(http_engine, auth=None, token="t0ken")
    try:
        ok = httpx.get(f"{s.base}/version", headers={"authorization": "Bearer t0ken"})
        assert ok.status_code == 200
        bad = httpx.get(f"{s.base}/version", headers={"authorization": "Bearer other"})
        assert bad.status_code == 401
        basic = base64.b64encode(b"a:b").decode()
        assert (
            httpx.get(f"{s.base}/version", headers={"authorization": f"Basic {basic}"}).status_code
            == 401
        )
    finally:
        s.client.close()
        s.stop()


def test_credentials_parsing() -> None:
    creds = Credentials.parse("ann:pa:ss")
    assert creds is not None and (creds.user, creds.password) == ("ann", "pa:ss")
    assert Credentials.parse(None) is None
    with pytest.raises(EngineError):
        Credentials.parse("no-colon")
    header = "Basic " + base64.b64encode(b"ann:pa:ss").decode()
    assert creds.accepts(header)
    assert not creds.accepts("Basic " + base64.b64encode(b"ann:pa").decode())


def test_body_caps(http_engine: ProcessEngine) -> None:
    limits = Limits(max_json_bytes=2000, max_deployment_bytes=5000, max_json_depth=5)
    s = serve(http_engine, limits=limits)
    try:
        big = {"workerId": "w", "maxTasks": 1, "topics": [], "pad": "x" * 3000}
        response = s.client.post("/external-task/fetchAndLock", json=big)
        assert response.status_code == 413
        assert response.json()["type"] == "InvalidRequestException"
        # Chunked (no Content-Length): capped while streaming.
        chunks = (b'{"pad": "' + b"x" * 1000 for _ in range(4))
        streamed = s.client.post(
            "/external-task/fetchAndLock",
            content=chunks,
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 413
        deep = {"workerId": "w", "maxTasks": 1, "topics": [[[[[[[]]]]]]]}
        response = s.client.post("/external-task/fetchAndLock", json=deep)
        assert response.status_code == 400 and "deeper" in response.json()["message"]
        upload = b"<x>" + b" " * 6000 + b"</x>"
        response = s.client.post("/deployment/create", files={"f": ("f.bpmn", upload, "text/xml")})
        assert response.status_code == 413
        assert httpx.get(f"{s.base}/deployment", auth=s.client.auth).json() == []
    finally:
        s.client.close()
        s.stop()


def test_bpmn_uploads_go_through_the_hardened_parser(served: Served) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;&lol;">]><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/'
        b'BPMN/20100524/MODEL"><bpmn:process id="p">&lol2;</bpmn:process></bpmn:definitions>'
    )
    response = served.client.post(
        "/deployment/create", files={"f": ("evil.bpmn", bomb, "text/xml")}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "ParseException" and "evil.bpmn" in body["message"]
    assert "DOCTYPE" in body["message"]
    broken = served.client.post(
        "/deployment/create", files={"f": ("broken.bpmn", b"<bpmn:definitions", "text/xml")}
    )
    assert broken.status_code == 400 and "broken.bpmn" in broken.json()["message"]
    assert served.client.get("/deployment").json() == []
    traversal = served.client.post(
        "/deployment/create", files={"f": ("../../etc/x.bpmn", b"<x/>", "text/xml")}
    )
    assert "../" not in traversal.json()["message"]


def test_unexpected_errors_answer_500_without_stack_trace(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internal detail at /srv/app.py line 12")

    monkeypatch.setattr(served.engine.external_tasks, "list", broken)
    response = served.client.get("/external-task")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"type", "message", "code"}
    text = json.dumps(body)
    assert "secret" not in text and "Traceback" not in text and "app.py" not in text


def test_serve_refuses_non_loopback_without_credentials(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(EngineError, match="--auth"):
        check_exposure("0.0.0.0", None, None)
    check_exposure("0.0.0.0", "a:b", None)
    check_exposure("127.0.0.1", None, None)
    monkeypatch.delenv("SPILLWAY_AUTH", raising=False)
    monkeypatch.delenv("SPILLWAY_TOKEN", raising=False)
    code = main(["--db", "sqlite://", "serve", "--host", "0.0.0.0", "--port", "1"])
    assert code == 2
    assert "refusing to serve on 0.0.0.0" in capsys.readouterr().err
