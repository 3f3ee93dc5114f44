"""``spillway serve``: Camunda 7's REST API, the operator console and the job executor in one
process.

uvicorn runs the app of ``engine.http.app.create_app``; the job executor runs beside it in the
same process. Shutdown (SIGINT / SIGTERM) is graceful: the server stops accepting connections,
pending long polls answer ``[]`` at once, requests in flight finish (up to ``--stop-timeout``),
then the executor stops acquiring and lets its running jobs finish.

Bound to an address other than loopback it refuses to start without credentials
(``--auth user:password`` / ``SPILLWAY_AUTH``, or a bearer ``--token`` / ``SPILLWAY_TOKEN``).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from typing import TYPE_CHECKING, Any

from engine.core.errors import EngineError

if TYPE_CHECKING:
    from engine.engine import ProcessEngine

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def add_arguments(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--host", default=env("SPILLWAY_HOST", DEFAULT_HOST), help="env SPILLWAY_HOST")
    p.add_argument(
        "--port",
        type=int,
        default=int(env("SPILLWAY_PORT", str(DEFAULT_PORT))),
        help="env SPILLWAY_PORT",
    )
    p.add_argument(
        "--auth",
        default=env("SPILLWAY_AUTH"),
        metavar="USER:PASSWORD",
        help="HTTP Basic credentials required on every request (env SPILLWAY_AUTH)",
    )
    p.add_argument(
        "--token",
        default=env("SPILLWAY_TOKEN"),
        help="a bearer token accepted as well (env SPILLWAY_TOKEN)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(env("SPILLWAY_WORKERS", "4")),
        help="job executor threads; 0 runs no executor (env SPILLWAY_WORKERS)",
    )
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        help="seconds in-flight requests and running jobs get to finish on shutdown",
    )
    p.add_argument("--log-level", default="warning", help="uvicorn's log level")
    p.add_argument(
        "--metrics-auth",
        choices=("required", "loopback"),
        default=env("SPILLWAY_METRICS_AUTH", "required"),
        help="/metrics needs the API's credentials (required, the default), or not from a "
        "client on this host (loopback) (env SPILLWAY_METRICS_AUTH)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve", help="Camunda 7's REST API, the operator console and the job executor (HTTP)"
    )
    add_arguments(p)
    p.set_defaults(fn=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth: str | None, token: str | None) -> None:
    if not is_loopback(host) and not auth and not token:
        raise EngineError(
            f"refusing to serve on {host} without credentials: give --auth user:password "
            "(or SPILLWAY_AUTH), or bind to 127.0.0.1"
        )


def run(eng: ProcessEngine, args: argparse.Namespace) -> None:
    try:
        import uvicorn
    except ImportError as exc:
        raise EngineError(
            "spillway serve needs the http extra: pip install 'spillway-bpmn[http]'"
        ) from exc
    from uvicorn.config import LOGGING_CONFIG

    from engine.http.app import create_app, hub_of

    check_exposure(args.host, args.auth, args.token)
    app = create_app(eng, auth=args.auth, token=args.token, metrics_auth=args.metrics_auth)
    hub = hub_of(app)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            hub.close()  # pending long polls answer now instead of holding the shutdown
            await super().shutdown(sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            # uvicorn raises a captured signal again once it stopped, which would kill the
            # process before the job executor stops: the stop is ours to finish.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list) and captured:
                captured.pop()

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=int(args.stop_timeout),
        lifespan="on",
        access_log=False,
        # --log-format json: uvicorn's own lines go through the engine's JSON handler too.
        log_config=None if getattr(args, "log_format", "text") == "json" else LOGGING_CONFIG,
    )
    executor = eng.job_executor(workers=args.workers) if args.workers > 0 else None
    if executor is not None:
        executor.start()
    print(
        f"spillway serve: console http://{args.host}:{args.port}/, REST API "
        f"http://{args.host}:{args.port}/engine-rest ({args.workers} job threads); "
        "Ctrl-C to stop",
        flush=True,
    )
    try:
        Server(config).run()
    finally:
        if executor is not None:
            executor.stop(timeout=args.stop_timeout)
    print("spillway serve: stopped", flush=True)
