"""The console's actions (POST): each calls one of the engine's verbs and goes back to the page
it came from (303) with the outcome shown there once.

Every action is CSRF-checked (``security``) before it reads anything. An action on an instance
or a user task names the revision the page showed (hidden field ``rev``): the instance row is
locked (``Store.locked_instance``: ``SELECT ... FOR UPDATE`` on PostgreSQL, the write lock on
SQLite), the revision compared, and the verb run inside that same transaction, so a stale page
(the instance moved on, ended, or the task was completed or claimed meanwhile) gets a clear
message and changes nothing; a verb that fails rolls the whole transaction back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from engine.core.errors import EngineError
from engine.core.values import has_ended
from engine.engine import ProcessEngine
from engine.http.console import security, views

NOTHING_CHANGED = "Nothing was changed"


class Stale(EngineError):
    """The page the action came from no longer shows the current state."""


def _revision(form: FormData) -> int | None:
    text = form.get("rev")
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise EngineError(f"the form's revision is not a number: {text[:20]!r}") from None


def _json_value(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(
            f'variable {name!r}: the value must be JSON ("text" in quotes, 42, true, '
            f"[...], {{...}}): {exc.msg} at column {exc.colno}"
        ) from None


def _json_object(text: str, what: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(
            f"{what} must be a JSON object: {exc.msg} at column {exc.colno}"
        ) from None
    if not isinstance(value, dict):
        raise EngineError(f'{what} must be a JSON object ({{"name": value}}), got {text[:40]!r}')
    return value


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


class Actions:
    def __init__(self, engine: ProcessEngine) -> None:
        self.engine = engine

    async def _form(self, request: Request) -> FormData:
        form = await request.form()
        token = form.get(security.FIELD)
        security.check(request, token if isinstance(token, str) else None)
        return form

    async def _run(
        self, request: Request, default_back: str, action: Callable[[FormData], str]
    ) -> Response:
        try:
            form = await self._form(request)
        except security.CsrfRefused as exc:
            return views.render(
                request,
                "error.html",
                status=403,
                title="Refused",
                message=f"{NOTHING_CHANGED}: {exc} (CSRF protection). Reload the page and try "
                "again.",
            )
        back = views.safe_back(_text(form, "back") or default_back)
        try:
            done = await run_in_threadpool(action, form)
        except Stale as exc:
            return views.redirect(
                back,
                "error",
                f"{NOTHING_CHANGED}: this page was out of date. "
                f"{exc} It now shows the current state.",
            )
        except EngineError as exc:
            return views.redirect(back, "error", f"{NOTHING_CHANGED}: {exc}")
        return views.redirect(back, "ok", done)

    def _on_instance(self, instance_id: str, rev: int | None, verb: Callable[[], object]) -> None:
        """Run ``verb`` in the instance's locked transaction if the page was current."""
        with self.engine.store.locked_instance(instance_id) as row:
            if row is None:
                raise Stale(f"Instance {instance_id} no longer exists.")
            if has_ended(row["state"]):
                raise Stale(f"Instance {instance_id} has ended ({row['state']}).")
            if rev is not None and int(row["rev"]) != rev:
                raise Stale(
                    f"Instance {instance_id} changed since the page was shown (revision {rev}, "
                    f"now {row['rev']})."
                )
            verb()

    def _task(self, task_id: str, rev: int | None) -> Mapping[str, Any]:
        row = self.engine.store.user_task(task_id)
        if row is None:
            raise Stale(f"User task {task_id} is no longer open (completed or cancelled).")
        if rev is not None and int(row["rev"]) != rev:
            raise Stale(
                f"User task {task_id} changed since the page was shown (now assigned to "
                f"{row['assignee'] or 'nobody'})."
            )
        return row

    # -- instances ------------------------------------------------------------------------

    async def instance_action(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        verb = request.path_params["verb"]
        user = views.user_of(request)
        engine = self.engine

        def act(form: FormData) -> str:
            rev = _revision(form)
            if verb == "cancel":
                reason = _text(form, "reason")
                self._on_instance(
                    instance_id, rev, lambda: engine.cancel(instance_id, reason, user=user)
                )
                return f"Instance {instance_id} cancelled."
            if verb == "suspend":
                self._on_instance(instance_id, rev, lambda: engine.suspend(instance_id))
                return f"Instance {instance_id} suspended: none of its jobs or tasks run."
            if verb == "activate":
                self._on_instance(instance_id, rev, lambda: engine.activate(instance_id))
                return f"Instance {instance_id} activated."
            if verb == "variables":
                name = _text(form, "name")
                if not name:
                    raise EngineError("give the variable's name")
                if form.get("remove"):
                    self._on_instance(
                        instance_id,
                        rev,
                        lambda: engine.remove_variables(instance_id, [name], user=user),
                    )
                    return f"Variable {name!r} removed."
                value = _json_value(name, str(form.get("value") or ""))
                self._on_instance(
                    instance_id,
                    rev,
                    lambda: engine.set_variables(instance_id, {name: value}, user=user),
                )
                return f"Variable {name!r} set to {views.as_json(value)[:200]}."
            if verb == "modify":
                start = [str(v) for v in form.getlist("start_before") if str(v).strip()]
                stop = [str(v) for v in form.getlist("cancel") if str(v).strip()]
                if not start and not stop:
                    raise EngineError("choose an activity to start before or to cancel")
                self._on_instance(
                    instance_id,
                    rev,
                    lambda: engine.modify(instance_id, start_before=start, cancel=stop),
                )
                parts = [f"started before {', '.join(start)}"] if start else []
                parts += [f"cancelled {', '.join(stop)}"] if stop else []
                return f"Instance {instance_id} modified: {'; '.join(parts)}."
            raise EngineError(f"no console action {verb!r}")

        return await self._run(request, f"/instances/{instance_id}", act)

    # -- incidents and jobs ---------------------------------------------------------------

    async def retry(self, request: Request) -> Response:
        engine = self.engine

        def act(form: FormData) -> str:
            ids = [str(v) for v in form.getlist("id") if str(v).strip()]
            if not ids:
                raise EngineError("select an incident or job to retry")
            retries_text = _text(form, "retries") or "1"
            if not retries_text.isdigit() or int(retries_text) < 1:
                raise EngineError(
                    f"retries must be a whole number of at least 1, got {retries_text!r}"
                )
            retries = int(retries_text)
            for item in ids:  # all current, or none is retried
                incident = engine.store.incident(item)
                if incident is not None:
                    if incident["resolved_at"] is not None:
                        raise Stale(f"Incident {item} was resolved meanwhile.")
                elif engine.store.job(item) is None and engine.store.external_task(item) is None:
                    raise Stale(f"Job {item} no longer exists (it ran or its instance ended).")
            for item in ids:
                engine.retry(item, retries=retries)
            what = f"{len(ids)} incidents/jobs" if len(ids) > 1 else ids[0]
            return f"Retrying {what} with {retries} {'retry' if retries == 1 else 'retries'}."

        return await self._run(request, "/incidents", act)

    # -- user tasks -----------------------------------------------------------------------

    async def task_action(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        verb = request.path_params["verb"]
        engine = self.engine
        signed_in = views.user_of(request)

        def act(form: FormData) -> str:
            rev = _revision(form)
            task = self._task(task_id, rev)
            instance_id = str(task["instance_id"])
            label = task["name"] or task["activity_id"]
            user = _text(form, "user") or signed_in
            verb_call: Callable[[], object]
            if verb == "claim":
                if not user:
                    raise EngineError("give the user who claims the task")
                verb_call = functools.partial(engine.claim, task_id, user)
                done = f"Task {label!r} claimed by {user}."
            elif verb == "unclaim":
                verb_call = functools.partial(engine.unclaim, task_id)
                done = f"Task {label!r} unclaimed."
            elif verb == "complete":
                variables = _json_object(str(form.get("variables") or ""), "the variables")
                activity = str(task["activity_id"])
                verb_call = functools.partial(
                    engine.complete_task, instance_id, activity, variables
                )
                done = f"Task {label!r} completed."
            else:
                raise EngineError(f"no console action {verb!r}")

            def checked() -> None:
                self._task(task_id, rev)  # again, under the instance's lock
                verb_call()

            self._on_instance(instance_id, None, checked)
            return done

        return await self._run(request, "/tasks", act)
