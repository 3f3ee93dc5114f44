"""``ProcessEngine``: the public entry point (see CONTRACT.md for every name on it) and the
composition root: it builds the store, the command seam, the job runner and the external-task
service, and is the ``Services`` a run needs (handlers, behaviours, retry policies).

Each public call is one command of ``engine.runtime.commands``: read what it needs, run the
process in memory, and commit the result in one transaction, re-run on a lost
optimistic-locking race.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from behaviors import (
    AsyncBeforeBehavior,
    AsyncOnErrorBehavior,
    ExternalBehavior,
    PooledBehavior,
    SyncBehavior,
)
from engine.bpmn import correlation_keys, signals, timer_events
from engine.bpmn.loops import DEFAULT_MAX_LOOP_ITERATIONS
from engine.bpmn.scripting import SafeScriptEngine
from engine.bpmn.specs import activity_config
from engine.core import limits
from engine.core.bounded import BoundedCache
from engine.core.clock import Clock, SystemClock
from engine.core.errors import (
    ConcurrencyConflict,
    CorrelationError,
    DeploymentError,
    EngineError,
    InvalidArgument,
    NotFound,
)
from engine.core.ids import new_id
from engine.core.observe import NO_OBSERVER, Observer, command
from engine.core.retry import RetryPolicy
from engine.core.stats import Counters
from engine.core.values import (
    Deployment,
    ExternalTask,
    HistoryEntry,
    Incident,
    Job,
    ProcessInstance,
)
from engine.core.variables import check_variables
from engine.deploy import bpmnxml, retry_config
from engine.deploy.deployment import ProcessModel, check_bindings, compile_sources
from engine.operating import OperatingVerbs
from engine.runtime import correlation as correlation_
from engine.runtime import rows
from engine.runtime.activation import Behavior, Handler
from engine.runtime.codec import InstanceCodec
from engine.runtime.commands import CONFLICT_RETRIES, Commands, check_not_suspended
from engine.storage.outbox import DEFAULT_BRIDGE_WORKER, DEFAULT_PUBLISH_LOCK, OutboxRoute
from engine.storage.store import Store
from engine.work.executor import JobExecutor
from engine.work.external_tasks import ExternalTaskService
from engine.work.history_cleanup import (
    HistoryCleanup,
    to_timedelta,
)
from engine.work.job_runner import JobRunner, new_owner
from engine.work.metrics import EngineMetrics
from engine.work.pool import WorkerPool

log = logging.getLogger("spillway.engine")

#: Retry policies kept per (model, task); a miss reads the task's attributes again.
POLICY_CACHE_SIZE = 4096


H = TypeVar("H", bound=Handler)


class ProcessEngine(OperatingVerbs):
    """A BPMN engine over one database. Create one per process and share it between threads."""

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        retry_policy: RetryPolicy | None = None,
        async_on_error: bool = True,
        lazy_handlers: bool = False,
        allow_scripts: bool = False,
        max_loop_iterations: int = DEFAULT_MAX_LOOP_ITERATIONS,
        allow_javascript: bool = True,
        history_time_to_live: float | timedelta | None = None,
        metrics: bool = True,
    ) -> None:
        ttl = to_timedelta(history_time_to_live, "history_time_to_live")
        self.store = Store(url)
        self.store.migrate()
        self.clock: Clock = clock or SystemClock()
        self.retry_policy = retry_policy or RetryPolicy()
        self.async_on_error = async_on_error
        self.lazy_handlers = lazy_handlers
        self.codec = InstanceCodec()
        if max_loop_iterations < 1:
            raise ValueError("max_loop_iterations must be at least 1")
        self._script_engine = SafeScriptEngine(
            allow_scripts=allow_scripts,
            max_loop_iterations=max_loop_iterations,
            allow_javascript=allow_javascript,  # sandboxed (expressions.javascript), so on
        )
        self._handlers: dict[str, Handler] = {}
        self._policies: BoundedCache[tuple[str, str], RetryPolicy] = BoundedCache(
            POLICY_CACHE_SIZE, "retry policies"
        )
        self._behaviors: dict[str, Behavior] = {
            "sync": SyncBehavior(),
            "async-on-error": AsyncOnErrorBehavior(),
            "async-before": AsyncBeforeBehavior(),
            "external": ExternalBehavior(),
            "pooled": PooledBehavior(),
        }
        self._outbox_routes: dict[str, OutboxRoute] = {}
        #: Named counters, e.g. stats["conflicts_retried"] (see engine.core.stats).
        self.stats = Counters()
        #: This engine's Prometheus metrics (``metrics.registry``, a CollectorRegistry of its
        #: own; ``metrics.exposition()``), None when made with ``metrics=False``
        #: (engine.work.metrics, docs/operations.md).
        self.metrics: EngineMetrics | None = (
            EngineMetrics(self.store, self.now, self.stats) if metrics else None
        )
        #: What the runtime tells of its work (engine.core.observe): the metrics, or nothing.
        self.observer: Observer = self.metrics if self.metrics is not None else NO_OBSERVER
        #: The command seam (load -> run -> commit) every state change goes through.
        self.commands = Commands(
            self.store,
            self,
            self.codec,
            self.stats,
            # Looked up at each call: a signal job runs as any job does (execute_job).
            run_signal_job=lambda job_id: self.execute_job(job_id),
            observer=self.observer,
        )
        self.job_runner = JobRunner(self)
        self.external_tasks = ExternalTaskService(self)
        #: Ended instances of processes without camunda:historyTimeToLive are kept this long
        #: (None: kept); see ``cleanup_history``.
        self.history_time_to_live = ttl
        #: What ``cleanup_history`` runs (``engine.work.history_cleanup``; ``.batch`` is the
        #: number of instances deleted per transaction).
        self.history_cleanup = HistoryCleanup(self.store, self.history_time_to_live)

    # -- handlers -----------------------------------------------------------------------

    def register_handler(self, name: str, fn: Handler) -> None:
        if not name or not callable(fn):
            raise EngineError(
                "register_handler needs a name and a callable, "
                f"got {limits.shown(name)}, {limits.shown(fn)}"
            )
        self._handlers[name] = fn

    def unregister_handler(self, name: str) -> Handler | None:
        """Forget the handler registered as ``name``; returns it (None if there was none)."""
        return self._handlers.pop(name, None)

    def registered_handlers(self) -> frozenset[str]:
        """The names handlers are registered under (an executor acquires only jobs whose
        handler is among them, or that need none)."""
        return frozenset(self._handlers)

    def handler(self, name: str) -> Callable[[H], H]:
        """Decorator form of ``register_handler``."""

        def register(fn: H) -> H:
            self.register_handler(name, fn)
            return fn

        return register

    @property
    def handlers(self) -> Mapping[str, Handler]:
        """The registered handlers by name (read-only)."""
        return MappingProxyType(self._handlers)

    # -- what runs need (engine.runtime.run.Services) ---------------------------------------

    def now(self) -> Any:
        return self.clock.now()

    def handler_for(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def outbox_route(self, topic: str) -> OutboxRoute | None:
        return self._outbox_routes.get(topic)

    def publish_topics(
        self,
        topics: Sequence[str],
        *,
        worker_id: str = DEFAULT_BRIDGE_WORKER,
        lock_duration: float = DEFAULT_PUBLISH_LOCK,
        variables: Sequence[str] | None = None,
    ) -> None:
        """External tasks of ``topics`` created from now on are published by a message-broker
        bridge (``engine.bridge.rabbitmq``): each gets an outbox row in the transaction that creates
        it and starts locked for ``worker_id`` for ``lock_duration`` seconds. Every engine
        node that creates such tasks must be configured alike."""
        if isinstance(topics, str):
            raise EngineError(
                f"publish_topics expects a list of topics, got {limits.shown(topics)}"
            )
        only = tuple(variables) if variables is not None else None
        route = OutboxRoute(worker_id, float(lock_duration), only)
        for topic in topics:
            self._outbox_routes[topic] = route

    @property
    def script_engine(self) -> SafeScriptEngine:
        return self._script_engine

    def behavior_for(self, model: ProcessModel, task_spec: Any) -> Behavior:
        cfg = activity_config(task_spec)
        if cfg.get("pooled"):
            return self._behaviors["pooled"]
        if cfg.get("external"):
            return self._behaviors["external"]
        if cfg.get("async_before"):
            return self._behaviors["async-before"]
        flag = cfg.get("async_on_error")
        if flag is None:
            flag = model.async_on_error
        if flag is None:
            flag = self.async_on_error
        return self._behaviors["async-on-error" if flag else "sync"]

    def retry_policy_for(self, model: ProcessModel, task_spec: Any) -> RetryPolicy:
        # By spec name: a multi-instance activity's outer and inner specs share the BPMN id.
        key = (model.digest, task_spec.name)
        policy = self._policies.get(key)
        if policy is None:
            policy = retry_config.task_retry_policy(self.retry_policy, activity_config(task_spec))
            self._policies[key] = policy
        return policy

    # -- deployments --------------------------------------------------------------------

    @command("deploy")
    def deploy(
        self,
        source: str
        | os.PathLike[str]
        | bytes
        | Sequence[str | os.PathLike[str] | bytes | bpmnxml.Source],
        name: str | None = None,
        *,
        deployment_source: str | None = None,
    ) -> Deployment:
        """Deploy BPMN (and DMN) sources; unchanged content returns the existing deployment.
        ``source``: a path or folder, XML bytes, XML text (a str starting with ``<``), or a
        list of them, also of ``bpmnxml.Source(name, content)`` documents
        (engine.deploy.bpmnxml.collect_sources). ``deployment_source`` records who deploys
        (Camunda's ``deployment-source``, e.g. ``"Camunda Modeler"``)."""
        name = limits.check_name(name, "name", optional=True)
        deployment_source = limits.check_name(deployment_source, "deployment_source", optional=True)
        sources = bpmnxml.collect_sources(source)
        models = compile_sources(sources)
        check_bindings(models, lambda h: h in self._handlers, self.lazy_handlers)
        retry_config.check_models(models)
        digest = bpmnxml.deployment_digest(sources)

        def attempt() -> Deployment:
            existing = self.store.deployment_by_digest(digest)
            if existing is not None:
                defs = self.store.definitions_of_deployment(existing["id"])
                return self._deployment(existing, defs, models, existing_flag=True)
            return self._insert_deployment(sources, models, digest, name, deployment_source)

        return self.commands.retry_on_conflict(attempt)

    def _insert_deployment(
        self,
        sources: list[bpmnxml.Source],
        models: list[ProcessModel],
        digest: str,
        name: str | None,
        deployment_source: str | None = None,
    ) -> Deployment:
        now = self.clock.now()
        latest = self.store.latest_definitions([m.key for m in models])
        dep_id = new_id()
        definitions = []
        new_rows = []
        for model in models:
            current = latest.get(model.key)
            if current is not None and current["digest"] == model.digest:
                definitions.append(current)
                continue
            version = (current["version"] + 1) if current else 1
            row = {
                "id": f"{model.key}:{version}:{dep_id[:12]}",
                "key": model.key,
                "version": version,
                "deployment_id": dep_id,
                "resource": model.resource,
                "digest": model.digest,
                "message_starts": model.message_starts,
                "created_at": now,
            }
            new_rows.append(row)
            definitions.append(row)
        deployment = {
            "id": dep_id,
            "name": name or ", ".join(os.path.basename(s.name) for s in sources)[:255],
            "digest": digest,
            "created_at": now,
            "source": deployment_source,
        }
        resources = [
            {"deployment_id": dep_id, "name": s.name, "content": s.content} for s in sources
        ]
        start_jobs = [
            job
            for row in new_rows
            for job in self._timer_start_jobs(
                row, next(m for m in models if m.key == row["key"]), now
            )
        ]
        self.store.insert_deployment(deployment, resources, new_rows, start_jobs)
        if start_jobs:
            self.commands.wake("")
        for row in new_rows:
            model = next(m for m in models if m.key == row["key"])
            self.commands.remember_model(str(row["id"]), model)
        log.info(
            "deployed %s: %s", dep_id, ", ".join(f"{d['key']} v{d['version']}" for d in definitions)
        )
        return self._deployment(deployment, definitions, models)

    def _timer_start_jobs(
        self, definition: Mapping[str, Any], model: ProcessModel, now: Any
    ) -> list[dict[str, Any]]:
        """One job per timer start event of a new definition, due at its first firing."""
        jobs = []
        for timer in timer_events.start_timers(model.spec):
            try:
                text = timer.text({})
                due = timer.definition(text).first_due(now)
            except EngineError as exc:
                raise DeploymentError(
                    f"{model.resource}: {exc}", problems=[f"{model.resource}: {exc}"]
                ) from exc
            if due is None:
                continue
            spec = model.find_task_spec(timer.event_id)
            policy = self.retry_policy_for(model, spec) if spec is not None else self.retry_policy
            jobs.append(
                rows.new_job(
                    "timer-start",
                    definition_id=definition["id"],
                    activity_id=timer.event_id,
                    due_at=due,
                    retries=policy.retries + 1,
                    created_at=now,
                    payload={"sync": False, "event": timer.event_id, "text": text, "fired": 0},
                )
            )
        return jobs

    def _deployment(
        self,
        deployment: Mapping[str, Any],
        definitions: Sequence[Mapping[str, Any]],
        models: list[ProcessModel],
        existing_flag: bool = False,
    ) -> Deployment:
        keys = [m.key for m in models]
        versions = {d["key"]: int(d["version"]) for d in definitions}
        if existing_flag:
            latest = self.store.latest_definitions(keys)
            versions.update({k: int(v["version"]) for k, v in latest.items() if k not in versions})
        return Deployment(
            id=deployment["id"],
            name=deployment["name"],
            process_keys=tuple(keys),
            versions=versions,
            created_at=deployment["created_at"],
            existing=existing_flag,
            source=deployment.get("source"),
        )

    # -- commands -----------------------------------------------------------------------

    def add_listener(self, fn: Callable[[str], None]) -> None:
        """Called with the instance id after a commit that created or changed jobs or
        external tasks (the job executor and worker pools wake on it)."""
        self.commands.add_listener(fn)

    def remove_listener(self, fn: Callable[[str], None]) -> None:
        self.commands.remove_listener(fn)

    @command("start")
    def start(
        self,
        process_key: str,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
    ) -> ProcessInstance:
        """Start the latest version of a process and run it until every path waits or ends."""
        limits.check_name(process_key, "process_key")
        limits.check_name(business_key, "business_key", optional=True)
        variables = check_variables(variables, f"start('{process_key}')")
        definition = self.commands.latest_definition(process_key)
        run = self.commands.new_run(definition, variables, business_key)
        run.begin()
        return self.commands.commit(run)

    @command("complete_task")
    def complete_task(
        self, instance_id: str, activity_id: str, variables: Mapping[str, Any] | None = None
    ) -> ProcessInstance:
        """Complete a user, manual or receive task by its BPMN id and move on."""
        limits.check_id(instance_id, "instance_id")
        limits.check_name(activity_id, "activity_id")
        values = check_variables(variables, f"complete_task('{activity_id}')")
        return self.commands.command(
            instance_id, lambda run: run.complete_task(activity_id, values)
        )

    @command("correlate_message")
    def correlate_message(
        self,
        name: str,
        variables: Mapping[str, Any] | None = None,
        correlation: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        *,
        instance_id: str | None = None,
        correlation_key: str | int | None = None,
    ) -> ProcessInstance:
        """Deliver a message to the one instance waiting for it whose variables match
        ``correlation`` (and whose business key matches), or start a process whose message
        start event listens for it. ``instance_id`` delivers to that instance only (never
        starts one); CorrelationError if it does not wait for the message.
        ``correlation_key`` matches the key a Camunda 8 ``zeebe:subscription`` gave the wait
        (a number is compared as its digits)."""
        values, criteria, key = self._message_arguments(
            "correlate_message",
            name,
            variables,
            correlation,
            business_key,
            instance_id,
            correlation_key,
        )
        for attempt in range(CONFLICT_RETRIES):
            matches = correlation_.waiting(
                self.commands, name, criteria, business_key, instance_id, key
            )
            if len(matches) > 1:
                raise CorrelationError(
                    f"message '{name}' matches {len(matches)} instances "
                    f"({', '.join(r['id'] for r in matches[:5])}); narrow the correlation"
                )
            if not matches and instance_id is not None:
                raise CorrelationError(
                    f"instance {instance_id} does not wait for message '{name}'"
                    + (f" matching {dict(criteria)}" if criteria else "")
                )
            if not matches:
                return self._start_by_message(name, values, business_key, criteria)
            try:
                return self.commands.command(
                    matches[0]["id"], lambda run: run.correlate(name, values)
                )
            except NotFound:
                # The instance moved on between the lookup and the load: look again.
                self.commands.backoff(attempt)
        raise CorrelationError(f"message '{name}': the waiting instance kept changing")

    @command("correlate_message_all")
    def correlate_message_all(
        self,
        name: str,
        variables: Mapping[str, Any] | None = None,
        correlation: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        *,
        instance_id: str | None = None,
        correlation_key: str | int | None = None,
    ) -> list[ProcessInstance]:
        """Camunda's ``correlateAll``: deliver the message to every waiting instance that
        matches and (unless ``instance_id`` narrows it to one instance) start the process
        whose message start event listens for it, all in one transaction. Returns the
        instances, the started one last; an empty list when nothing matched."""
        values, criteria, key = self._message_arguments(
            "correlate_message_all",
            name,
            variables,
            correlation,
            business_key,
            instance_id,
            correlation_key,
        )
        return correlation_.correlate_all(
            self.commands, name, values, criteria, business_key, instance_id, key
        )

    @classmethod
    def _message_arguments(
        cls,
        verb: str,
        name: str,
        variables: Mapping[str, Any] | None,
        correlation: Mapping[str, Any] | None,
        business_key: str | None,
        instance_id: str | None,
        correlation_key: str | int | None,
    ) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        """The checked variables, correlation criteria and key of a message verb."""
        limits.check_name(name, "name")
        limits.check_name(business_key, "business_key", optional=True)
        if instance_id is not None:
            limits.check_id(instance_id, "instance_id")
        values = check_variables(variables, f"{verb}('{name}')")
        if correlation is not None and not isinstance(correlation, Mapping):
            raise InvalidArgument(
                f"{verb}('{name}'): correlation must be a mapping of variable names "
                f"to values, got {type(correlation).__name__}",
                argument="correlation",
            )
        criteria = check_variables(correlation, f"{verb}('{name}') correlation")
        return values, criteria, cls._correlation_key(name, correlation_key)

    @staticmethod
    def _correlation_key(name: str, value: str | int | None) -> str | None:
        if value is None:
            return None
        try:
            return correlation_keys.key_text(value, "correlate_message", name)
        except EngineError as exc:
            raise InvalidArgument(str(exc), argument="correlation_key") from None

    @command("signal")
    def signal(self, name: str, variables: Mapping[str, Any] | None = None) -> int:
        """Broadcast a signal to every instance waiting for it (catch events, boundary events,
        event-based gateways, signal event subprocesses) and start every process with a signal
        start event of that name; how many instances took it."""
        limits.check_name(name, "name")
        values = check_variables(variables, f"signal('{name}')")
        return self.commands.broadcast_signal(name, values, signals.new_signal_id(), exclude=None)

    def _start_by_message(
        self,
        name: str,
        variables: dict[str, Any],
        business_key: str | None,
        criteria: Mapping[str, Any],
    ) -> ProcessInstance:
        definition = correlation_.starter(self.commands, name)
        if definition is None:
            detail = f" matching {dict(criteria)}" if criteria else ""
            detail += f" with business key '{business_key}'" if business_key else ""
            raise CorrelationError(
                f"no instance waits for message '{name}'{detail}, and no process starts with it"
            )
        run = self.commands.new_run(definition, {}, business_key)
        run.begin_by_message(name, variables)
        return self.commands.commit(run)

    # -- jobs and incidents -------------------------------------------------------------

    @command("execute_job")
    def execute_job(self, job_id: str) -> None:
        """Run one job now in this thread, whether it is due or not."""
        limits.check_id(job_id, "job_id")
        owner = new_owner("execute")
        rows = self.job_runner.acquire(owner, 1, job_id=job_id)
        if not rows:
            row = self.store.job(job_id)
            if row is None:
                raise NotFound(f"no job with id '{job_id}'")
            if int(row["retries_left"]) <= 0:
                raise EngineError(f"job {job_id} has no retries left; retry() it first")
            if row["instance_id"]:
                check_not_suspended(self.store.instance(row["instance_id"]))
            raise ConcurrencyConflict(f"job {job_id} is locked by {row['locked_by']}")
        self.job_runner.execute(rows[0], owner)

    def run_jobs(self, max_jobs: int | None = None) -> int:
        """Run due jobs in this thread until none is due; returns how many ran.

        The drain loop of tests and scripts: with a ManualClock, ``clock.advance()`` then
        ``run_jobs()`` fires whatever fell due.
        """
        owner = new_owner("run_jobs")
        count = 0
        while max_jobs is None or count < max_jobs:
            batch = self.job_runner.acquire(
                owner, 16 if max_jobs is None else min(16, max_jobs - count)
            )
            if not batch:
                return count
            # Run in memory one after another and committed together (group commit).
            self.job_runner.execute_batch(batch, owner)
            count += len(batch)
        return count

    @command("retry")
    def retry(self, job_or_incident_id: str, retries: int = 1) -> Job | ExternalTask:
        """Resolve a job's incident and make it due now with ``retries`` attempts. For a failed
        external task (its incident, or its id) the task is fetchable now with ``retries``
        and is returned instead of a job."""
        limits.check_id(job_or_incident_id, "job_or_incident_id")
        limits.check_count(retries, "retries", minimum=1)
        now = self.clock.now()
        job_id = job_or_incident_id
        incident = self.store.incident(job_or_incident_id)
        if incident is None and self.store.external_task(job_or_incident_id) is not None:
            return self.external_tasks.retry(job_or_incident_id, retries)
        if incident is not None:
            if incident["kind"] == "failed-external-task" and incident["job_id"] is not None:
                return self.external_tasks.retry(incident["job_id"], retries)
            if incident["job_id"] is None:
                raise EngineError(f"incident {job_or_incident_id} has no job to retry")
            job_id = incident["job_id"]
        try:
            self.store.retry_job(job_id, retries, now)
        except KeyError:
            raise NotFound(f"no job or incident with id '{job_or_incident_id}'") from None
        row = self.store.job(job_id)
        assert row is not None
        self.commands.wake(row["instance_id"])
        return rows.job(row)

    def job_executor(self, workers: int = 4, **options: Any) -> JobExecutor:
        """Background executor threads for this engine: ``ex.start()``, ``ex.stop()``."""
        return JobExecutor(self, workers=workers, **options)

    def worker_pool(self, topic: str, handler: Handler | None = None, **options: Any) -> WorkerPool:
        """Threads running ``handler`` (default: the handler registered under ``topic``) for
        the external tasks of ``topic``: ``pool.start()``, ``pool.stop()``. Options: core_size,
        max_size, keep_alive, acquire_wait, max_per_acquisition, lock_duration (work.pool)."""
        return WorkerPool(self, topic, handler, **options)

    # -- HTTP (engine.http) -------------------------------------------------------------

    @command("start_definition")
    def start_definition(
        self,
        definition_id: str,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
    ) -> ProcessInstance:
        """Like ``start`` but of one given definition (a version other than the latest):
        ``POST /process-definition/{id}/start``."""
        variables = check_variables(variables, f"start of definition '{definition_id}'")
        definition = self.commands.definition(definition_id)
        if definition is None:
            raise NotFound(f"no process definition with id '{definition_id}'")
        run = self.commands.new_run(definition, variables, business_key)
        run.begin()
        return self.commands.commit(run)

    def asgi_app(self, **options: Any) -> Any:
        """Camunda 7's REST API over this engine as an ASGI app (Starlette), to mount in your
        own service; options as ``engine.http.app.create_app`` (auth, token, limits...).
        Needs the ``http`` extra. The job executor is yours to run beside it."""
        # The HTTP layer sits above this facade and is optional: resolved when asked for.
        app_module = importlib.import_module("engine.http.app")
        return app_module.create_app(self, **options)

    # -- reads --------------------------------------------------------------------------

    def get_instance(self, instance_id: str) -> ProcessInstance:
        limits.check_id(instance_id, "instance_id")
        row = self.store.instance(instance_id)
        if row is None:
            raise NotFound(f"no process instance with id '{instance_id}'")
        return rows.instance(row)

    def instances(
        self,
        process_key: str | None = None,
        state: str | None = None,
        business_key: str | None = None,
        limit: int | None = None,
    ) -> list[ProcessInstance]:
        """Instances, oldest first; ``limit``: at most that many (None: all)."""
        limits.check_name(process_key, "process_key", optional=True)
        limits.check_name(state, "state", optional=True)
        limits.check_name(business_key, "business_key", optional=True)
        return [
            rows.instance(r)
            for r in self.store.instances(
                process_key=process_key,
                state=state,
                business_key=business_key,
                limit=limits.check_limit(limit),
            )
        ]

    def history(self, instance_id: str) -> list[HistoryEntry]:
        limits.check_id(instance_id, "instance_id")
        if self.store.instance(instance_id) is None:
            raise NotFound(f"no process instance with id '{instance_id}'")
        return [rows.history_entry(r) for r in self.store.history(instance_id)]

    def jobs(self, instance_id: str | None = None, limit: int | None = None) -> list[Job]:
        """Jobs in due order; ``limit``: at most that many (None: all)."""
        if instance_id is not None:
            limits.check_id(instance_id, "instance_id")
        return [rows.job(r) for r in self.store.jobs(instance_id, limit=limits.check_limit(limit))]

    def incidents(
        self, instance_id: str | None = None, open_only: bool = True, limit: int | None = None
    ) -> list[Incident]:
        """Incidents, oldest first; ``limit``: at most that many (None: all)."""
        if instance_id is not None:
            limits.check_id(instance_id, "instance_id")
        found = self.store.incidents(instance_id, open_only, limit=limits.check_limit(limit))
        return [rows.incident(r) for r in found]

    def caches(self) -> list[BoundedCache[Any, Any]]:
        """Every cache this engine keeps (parsed models, definition rows, retry policies,
        external-task configs, history time to live): each has a bound (``maxsize``) and
        drops its least recently used entry when full (docs/benchmarks.md, "Memory")."""
        return [
            *self.commands.caches(),
            self._policies,
            *self.external_tasks.caches(),
            *self.history_cleanup.caches(),
        ]

    def close(self) -> None:
        self.store.dispose()

    def __enter__(self) -> ProcessEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ProcessEngine"]
