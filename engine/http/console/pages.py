"""The console's pages (GET): processes, one process's diagram, instances, one instance,
incidents and jobs, user tasks. Each reads through ``queries`` (or the engine's read calls) and
renders a template; the page's script polls the same URL to update it without reload."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.core.errors import EngineError
from engine.engine import ProcessEngine
from engine.http.console import queries, views


def _diagram(
    definition: dict[str, Any],
    counts: dict[str, queries.ActivityCount],
    active: list[str] | None = None,
) -> dict[str, Any]:
    """What the diagram element of a page carries: the XML's URL, per-activity badges,
    and the activities to highlight."""
    return {
        "xml_url": views.url(f"/diagrams/{definition['id']}"),
        "counts": {
            activity: {"waiting": c.waiting, "incidents": c.incidents}
            for activity, c in sorted(counts.items())
        },
        "active": active if active is not None else sorted(counts),
        "incidents": sorted(a for a, c in counts.items() if c.incidents),
    }


class Pages:
    def __init__(self, engine: ProcessEngine) -> None:
        self.engine = engine

    def not_found(self, request: Request, text: str) -> Response:
        return views.render(request, "error.html", status=404, title="Not found", message=text)

    def processes(self, request: Request) -> Response:
        return views.render(
            request,
            "processes.html",
            nav="processes",
            title="Processes",
            processes=queries.processes(self.engine),
        )

    def process(self, request: Request) -> Response:
        key = request.path_params["key"]
        version_text = request.query_params.get("version")
        version = int(version_text) if version_text and version_text.isdigit() else None
        definition = queries.definition(self.engine, key, version)
        if definition is None:
            return self.not_found(request, f"No process '{key}' (version {version or 'latest'}).")
        summary = next(s for s in queries.processes(self.engine) if s.key == key)
        counts = queries.activity_counts(self.engine, definition["id"])
        recent = queries.instance_page(
            self.engine, queries.InstanceFilter(process_key=key, state="running"), None, size=10
        )
        return views.render(
            request,
            "process.html",
            nav="processes",
            title=f"Process {key}",
            summary=summary,
            definition=definition,
            counts=counts,
            diagram=_diagram(definition, counts),
            recent=recent.rows,
        )

    def diagram(self, request: Request) -> Response:
        xml = queries.diagram_xml(self.engine, request.path_params["definition_id"])
        if xml is None:
            return Response("no such definition", status_code=404, media_type="text/plain")
        # Text, not XML: a deployed document opened directly must not run as a page of the
        # console (an XML document may carry XHTML scripts); the viewer fetches it as text.
        return Response(
            xml,
            media_type="text/plain; charset=utf-8",
            headers={
                "cache-control": "private, max-age=3600",
                "x-content-type-options": "nosniff",
                "content-security-policy": "default-src 'none'; sandbox",
            },
        )

    def instances(self, request: Request) -> Response:
        params = request.query_params
        error = None
        try:
            where = queries.InstanceFilter(
                process_key=params.get("process_key") or None,
                state=params.get("state") or None,
                business_key=params.get("business_key") or None,
                variable=params.get("variable") or None,
                value=params.get("value") if params.get("variable") else None,
            )
            page = queries.instance_page(self.engine, where, params.get("after") or None)
        except EngineError as exc:
            where, page, error = queries.InstanceFilter(), queries.InstancePage([], None), str(exc)
        return views.render(
            request,
            "instances.html",
            status=400 if error else 200,
            nav="instances",
            title="Instances",
            where=where,
            page=page,
            error=error,
            first_page=not params.get("after"),
            keys=[s.key for s in queries.processes(self.engine)],
        )

    def instance(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        row = self.engine.store.instance(instance_id)
        if row is None:
            return self.not_found(request, f"No process instance '{instance_id}'.")
        definition = self.engine.store.definition(row["definition_id"])
        if definition is None:
            return self.not_found(request, f"Instance {instance_id}: its definition is gone.")
        active = queries.open_activities(self.engine, instance_id)
        incidents = queries.incidents_of(self.engine, instance_id)
        counts = {a: queries.ActivityCount(waiting=1) for a in active}
        for inc in incidents:
            counts.setdefault(inc["activity_id"], queries.ActivityCount()).incidents += 1
        return views.render(
            request,
            "instance.html",
            nav="instances",
            title=f"Instance {instance_id}",
            inst=row,
            running=row["state"] in queries.RUNNING,
            definition=definition,
            diagram=_diagram(definition, counts, active),
            active=active,
            incidents=incidents,
            jobs=queries.jobs_of(self.engine, instance_id),
            external=queries.external_tasks(self.engine, instance_id),
            tasks=queries.user_tasks(self.engine, instance_id=instance_id),
            history=self.engine.history(instance_id),
            variable_history=self.engine.variable_history(instance_id),
            activities=queries.activities(self.engine, definition),
            user=views.user_of(request),
        )

    def incidents(self, request: Request) -> Response:
        rows = queries.open_incidents(self.engine)
        return views.render(
            request,
            "incidents.html",
            nav="incidents",
            title="Incidents and jobs",
            groups=queries.group_incidents(rows),
            incident_count=len(rows),
            limit=queries.LIST_LIMIT,
            jobs=queries.failed_jobs(self.engine),
            external=queries.external_tasks(self.engine),
            now=self.engine.clock.now(),
        )

    def tasks(self, request: Request) -> Response:
        assignee = request.query_params.get("assignee") or None
        return views.render(
            request,
            "tasks.html",
            nav="tasks",
            title="User tasks",
            tasks=queries.user_tasks(self.engine, assignee=assignee),
            assignee=assignee,
            user=views.user_of(request),
            limit=queries.LIST_LIMIT,
        )
