"""The console's routes: its pages, actions and static files (``create_app`` mounts them)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

import engine.assets
from engine.engine import ProcessEngine
from engine.http.console import views
from engine.http.console.actions import Actions
from engine.http.console.pages import Pages

BPMN_JS = Path(engine.assets.__file__).parent / "bpmn-js"


def routes(engine: ProcessEngine) -> list[BaseRoute]:
    """The console's pages, actions and static files, relative to the site's root."""
    pages, actions = Pages(engine), Actions(engine)
    return [
        Route("/", pages.processes, methods=["GET"], name="console:processes"),
        Route("/processes/{key}", pages.process, methods=["GET"]),
        Route("/diagrams/{definition_id}", pages.diagram, methods=["GET"]),
        Route("/instances", pages.instances, methods=["GET"]),
        Route("/instances/{instance_id}", pages.instance, methods=["GET"]),
        Route("/instances/{instance_id}/{verb}", actions.instance_action, methods=["POST"]),
        Route("/incidents", pages.incidents, methods=["GET"]),
        Route("/retry", actions.retry, methods=["POST"]),
        Route("/tasks", pages.tasks, methods=["GET"]),
        Route("/tasks/{task_id}/{verb}", actions.task_action, methods=["POST"]),
        Mount("/static/console", app=StaticFiles(directory=views.STATIC), name="console:static"),
        Mount("/static/bpmn-js", app=StaticFiles(directory=BPMN_JS), name="console:bpmn-js"),
    ]
