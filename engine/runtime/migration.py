"""Process instance migration: ``migrate(instance_ids, to_version, mapping=None)``.

Running instances move to another version of their process. Each activity maps to the activity
of the same id in the target version unless ``mapping`` names another (``{"Old": "New"}`` for a
renamed one). Their tokens stay where they are (nothing is re-entered): the stored task tree is
re-pointed at the target version's elements, the instance row names the target definition, and
its jobs, timers (with their due dates), external tasks (with their locks) and user tasks (with
their assignees) follow, renamed where the mapping renames.

The whole plan is validated before anything moves: unknown instances, ended ones, a target
version that does not exist, mapping entries naming activities that do not exist, a token at
an activity the target lacks, or at one that is a different kind of element there. Every
problem of every instance is listed in one ``InvalidOperation``; otherwise all instances move
in one transaction.

Activities that already ended and that the target no longer has stay in the history; in the
stored tree they are re-pointed at the target's start task (they never run again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.util.task import TaskState
from SpiffWorkflow.workflow import Workflow

from engine.bpmn import event_subprocesses
from engine.core.errors import EngineError, InvalidOperation
from engine.core.values import ENDED_STATES as ENDED
from engine.core.values import ProcessInstance
from engine.deploy.deployment import ProcessModel
from engine.runtime import finish
from engine.runtime.operations import Host
from engine.runtime.run import Run

_OPEN = int(TaskState.READY | TaskState.STARTED | TaskState.WAITING)
_PREDICTED = int(TaskState.PREDICTED_MASK | TaskState.FUTURE)


@dataclass
class _Plan:
    row: dict[str, Any]
    definition: Mapping[str, Any]
    model: ProcessModel
    data: dict[str, Any]


def _check_mapping(mapping: Mapping[str, str] | None) -> dict[str, str]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise EngineError(f"migrate: mapping must be a dict of activity ids, got {mapping!r}")
    for old, new in mapping.items():
        if not (isinstance(old, str) and old and isinstance(new, str) and new):
            raise EngineError(f"migrate: mapping entry {old!r}: {new!r} must map id to id")
    return dict(mapping)


def _flow_ids(model: ProcessModel) -> set[str]:
    return {i for ts in model.all_task_specs() if (i := getattr(ts, "bpmn_id", None))}


class _Resolver:
    """Maps spec names of the source version onto the target version's."""

    def __init__(self, source: ProcessModel, target: ProcessModel, mapping: dict[str, str]):
        self.source, self.target, self.mapping = source, target, mapping

    def wf_spec(self, model: ProcessModel, name: str | None) -> Any:
        return model.spec if name is None else model.subprocess_specs.get(name)

    def subprocess_name(self, name: str) -> str:
        return self.mapping.get(name, name)

    def spec_name(self, old_wf: Any, new_wf: Any, name: str) -> tuple[str | None, Any, Any]:
        """(target spec name or None, old spec, new spec)."""
        old = old_wf.task_specs.get(name)
        bpmn_id = getattr(old, "bpmn_id", None)
        if bpmn_id:
            new_id = self.mapping.get(bpmn_id, bpmn_id)
            same = [
                s
                for s in new_wf.task_specs.values()
                if getattr(s, "bpmn_id", None) == new_id and type(s) is type(old)
            ]
            if len(same) > 1:
                renamed = name.replace(bpmn_id, new_id, 1)
                same = [s for s in same if s.name == renamed] or same[:1]
            if same:
                return same[0].name, old, same[0]
            kinds = [s for s in new_wf.task_specs.values() if getattr(s, "bpmn_id", None) == new_id]
            return None, old, kinds[0] if kinds else None
        if name in new_wf.task_specs:
            return name, old, new_wf.task_specs[name]
        if name.endswith(".EndJoin"):
            return f"{new_wf.name}.EndJoin", old, new_wf.task_specs.get(f"{new_wf.name}.EndJoin")
        for old_id, new_id in self.mapping.items():
            if (
                name.startswith(old_id)
                and (renamed := new_id + name[len(old_id) :]) in new_wf.task_specs
            ):
                return renamed, old, new_wf.task_specs[renamed]
        return None, old, None


def _kind(spec: Any) -> str:
    return type(spec).__name__ if spec is not None else "nothing"


def _rewrite(
    resolver: _Resolver, wf: dict[str, Any], old_wf: Any, new_wf: Any, where: str
) -> list[str]:
    """Re-point one (sub)workflow's tasks at ``new_wf``; problems of its tokens."""
    problems: list[str] = []
    tasks: dict[str, Any] = wf["tasks"]
    for tid in [t for t, task in tasks.items() if int(task["state"]) & _PREDICTED]:
        task = tasks.pop(tid)
        parent = tasks.get(task["parent"]) if task["parent"] else None
        if parent is not None and tid in parent["children"]:
            parent["children"].remove(tid)
    # Predicted tasks below a dropped one are gone with it (their parents were dropped too).
    for task in tasks.values():
        task["children"] = [c for c in task["children"] if c in tasks]
    for task in tasks.values():
        name = task["task_spec"]
        new_name, old, new = resolver.spec_name(old_wf, new_wf, name)
        is_token = bool(int(task["state"]) & _OPEN)
        shown = getattr(old, "bpmn_id", None) or name
        if is_token and new_name is None and getattr(old, "bpmn_id", None):
            target_id = resolver.mapping.get(shown, shown)
            if new is None:
                problems.append(
                    f"{where}: a token is at '{shown}', which the target version lacks"
                    + (f" ('{target_id}')" if target_id != shown else "")
                    + "; map it to an activity of the target"
                )
            else:
                problems.append(
                    f"{where}: a token is at '{shown}' ({_kind(old)}), but '{target_id}' is a "
                    f"{_kind(new)} in the target version"
                )
            continue
        if new_name is None:
            new_name = "Start" if is_token is False else name
        task["task_spec"] = new_name
    return problems


def _plan(
    host: Host, instance_id: str, to_version: int, mapping: dict[str, str], problems: list[str]
) -> _Plan | None:
    row = host.store.instance(instance_id)
    if row is None:
        problems.append(f"no process instance with id '{instance_id}'")
        return None
    where = f"instance {instance_id}"
    if row["state"] in ENDED:
        problems.append(f"{where} has ended ({row['state']})")
        return None
    target_def = host.store.definition_by_version(row["process_key"], to_version)
    if target_def is None:
        problems.append(f"{where}: process '{row['process_key']}' has no version {to_version}")
        return None
    source_def = host.store.definition(row["definition_id"])
    if source_def is None:
        problems.append(f"{where}: its definition {row['definition_id']} is gone")
        return None
    source, target = host.model(source_def), host.model(target_def)
    source_ids, target_ids = _flow_ids(source), _flow_ids(target)
    for old, new in mapping.items():
        if old not in source_ids:
            problems.append(
                f"{where}: mapping names '{old}', which version {row['version']} of "
                f"'{row['process_key']}' does not have"
            )
        if new not in target_ids:
            problems.append(
                f"{where}: mapping targets '{new}', which version {to_version} does not have"
            )
    resolver = _Resolver(source, target, mapping)
    data = json.loads(row["data"])
    found = _rewrite(resolver, data, source.spec, target.spec, where)
    for sub in data.get("subprocesses", {}).values():
        name = sub.get("spec")
        old_wf = resolver.wf_spec(source, name)
        new_name = resolver.subprocess_name(name) if name else None
        new_wf = resolver.wf_spec(target, new_name)
        if old_wf is None or new_wf is None:
            if any(int(t["state"]) & _OPEN for t in sub["tasks"].values()):
                found.append(f"{where}: subprocess '{name}' has no counterpart in the target")
            continue
        sub["spec"] = new_name
        found += _rewrite(resolver, sub, old_wf, new_wf, where)
    problems.extend(found)
    return _Plan(row, target_def, target, data) if not found else None


def migrate(
    host: Host,
    instance_ids: Sequence[str],
    to_version: int,
    mapping: Mapping[str, str] | None = None,
) -> list[ProcessInstance]:
    if isinstance(instance_ids, str) or not isinstance(instance_ids, Sequence):
        raise EngineError(f"migrate: expected a list of instance ids, got {instance_ids!r}")
    if isinstance(to_version, bool) or not isinstance(to_version, int) or to_version < 1:
        raise EngineError(f"migrate: to_version must be a version number, got {to_version!r}")
    renames = _check_mapping(mapping)
    ids = list(dict.fromkeys(instance_ids))
    if not ids:
        raise EngineError("migrate: no instance ids given")

    def attempt() -> list[ProcessInstance]:
        problems: list[str] = []
        plans = [_plan(host, iid, to_version, renames, problems) for iid in ids]
        if problems:
            raise InvalidOperation(
                f"migration to version {to_version} refused, nothing moved: " + "; ".join(problems),
                problems=problems,
            )
        runs = [_run(host, plan, renames) for plan in plans if plan is not None]
        writes = [
            finish.instance_write(
                run, host.codec, run.row is not None and run.row["state"] == "incident"
            )
            for run in runs
        ]
        host.store.apply_all(writes)
        for write in writes:
            host.wake(write.instance["id"])  # its jobs and external tasks changed
        return [finish.snapshot(run) for run in runs]

    return host.retry_on_conflict(attempt)


def _rename_key(key: str, mapping: dict[str, str]) -> str:
    if "/" not in key:
        return key
    task_id, event_id = key.split("/", 1)
    return f"{task_id}/{mapping.get(event_id, event_id)}"


def _run(host: Host, plan: _Plan, mapping: dict[str, str]) -> Run:
    row, model = plan.row, plan.model
    workflow = host.codec.load(json.dumps(plan.data), model.spec, model.subprocess_specs)
    event_subprocesses.install(workflow)
    # The paths ahead of the tokens, predicted anew from the target version's flows.
    for wf in (workflow, *workflow.subprocesses.values()):
        Workflow._predict(wf)
    run = Run(
        host.services,
        model,
        plan.definition,
        workflow,
        row,
        instance_id=row["id"],
        business_key=row["business_key"],
    )
    run.ledger.job_keys = {_rename_key(k, mapping): v for k, v in run.ledger.job_keys.items()}
    store = host.store
    for job in store.jobs(row["id"]):
        changes: dict[str, Any] = {}
        if job["activity_id"] in mapping:
            changes["activity_id"] = mapping[job["activity_id"]]
        payload = dict(job["payload"] or {})
        if payload.get("event") in mapping:
            payload["event"] = mapping[payload["event"]]
            changes["payload"] = payload
        if changes:
            run.write.jobs_update.append({"id": job["id"], **changes, "rev": int(job["rev"]) + 1})
    for task in store.external_tasks_of(row["id"]):
        if task["activity_id"] in mapping:
            run.write.external_update.append(
                {
                    "id": task["id"],
                    "activity_id": mapping[task["activity_id"]],
                    "rev": int(task["rev"]) + 1,
                }
            )
    for task in store.user_tasks(instance_id=row["id"]):
        if task["activity_id"] in mapping:
            rev = int(task["rev"])
            run.write.user_tasks_update.append(
                {
                    "id": task["id"],
                    "expected_rev": rev,
                    "activity_id": mapping[task["activity_id"]],
                    "rev": rev + 1,
                }
            )
    return run
