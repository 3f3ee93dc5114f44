"""Fixtures of the HTTP tests: a real uvicorn server on a free loopback port over an engine on
the test database (SQLite file and PostgreSQL), with the system clock (real clients wait in
real time)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engine import ProcessEngine
from engine.core.clock import SystemClock
from engine.http.app import create_app, hub_of

HERE = Path(__file__).parent
USER, PASSWORD = "demo", "s3cret:pw"
AUTH = (USER, PASSWORD)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    engine: ProcessEngine
    base: str  # .../engine-rest
    client: httpx.Client
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._hub = hub_of(app)

    async def shutdown(self, sockets: Any = None) -> None:
        self._hub.close()
        await super().shutdown(sockets)

    def install_signal_handlers(self) -> None:  # a thread of the test process
        pass


def serve(engine: ProcessEngine, **options: Any) -> Served:
    options.setdefault("auth", f"{USER}:{PASSWORD}")
    app = create_app(engine, **options)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    server = _Server(config, app)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}/engine-rest"
    client = httpx.Client(base_url=base, auth=AUTH, timeout=30)
    return Served(engine, base, client, server, thread)


@pytest.fixture
def http_engine(db_url: str) -> Iterator[ProcessEngine]:
    eng = ProcessEngine(db_url, clock=SystemClock())
    yield eng
    eng.close()


@pytest.fixture
def served(http_engine: ProcessEngine) -> Iterator[Served]:
    s = serve(http_engine)
    yield s
    s.client.close()
    s.stop()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
