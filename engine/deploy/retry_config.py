"""The retry policy a task's BPMN attributes give it (``camunda:failedJobRetryTimeCycle``,
``spillway:retryTimeCycle``, ``spillway:retries``), and the deploy-time check that refuses a
value the runtime could not use."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from engine.bpmn.specs import activity_config
from engine.core.errors import DeploymentError, EngineError
from engine.core.retry import RetryPolicy
from engine.deploy.deployment import ProcessModel
from engine.expressions import juel


def task_retry_policy(default: RetryPolicy, cfg: Mapping[str, Any]) -> RetryPolicy:
    """The engine default, overridden by ``camunda:failedJobRetryTimeCycle`` /
    ``spillway:retryTimeCycle`` and ``spillway:retries`` on the task."""
    policy = default
    cycle = cfg.get("retry_cycle")
    if cycle and ("${" in str(cycle) or "#{" in str(cycle)):
        cycle = None  # an expression: evaluated when a retry is scheduled (runtime.ledger)
    if cycle:
        parsed = RetryPolicy.parse(str(cycle))
        policy = dataclasses.replace(parsed, non_retryable=default.non_retryable)
    retries = cfg.get("retries")
    if retries is not None:
        policy = dataclasses.replace(policy, retries=int(retries))
    return policy


def check_models(models: Iterable[ProcessModel]) -> None:
    """Refuse, at deploy time, attribute values the runtime could not use."""
    problems = []
    for model in models:
        for ts in model.all_task_specs():
            cfg = activity_config(ts)
            if not cfg:
                continue
            where = f"{model.resource}: task '{getattr(ts, 'bpmn_id', ts.name)}'"
            try:
                task_retry_policy(RetryPolicy(), cfg)
                cycle = str(cfg.get("retry_cycle") or "")
                if "${" in cycle or "#{" in cycle:
                    juel.compile_expression(cycle)
            except (EngineError, ValueError) as exc:
                problems.append(f"{where}: bad retry configuration: {exc}")
    if problems:
        raise DeploymentError(problems=problems)
