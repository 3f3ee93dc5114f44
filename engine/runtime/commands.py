"""The command seam: every state change of an instance goes load -> run -> commit through here.

A command reads what it needs, moves the process on in memory (a ``Run``) and commits the
result in one transaction. A command that loses an optimistic-locking race re-runs on fresh
state, with jittered backoff, a few times before ``ConcurrencyConflict`` reaches the caller.

``Commands`` also keeps what every command shares: the parsed models of the deployed
definitions (cached per engine), the listeners woken after a commit that created work (the job
executor, worker pools, the bridge), and the broadcast of a signal to every waiting instance.
The facade (``engine.engine.ProcessEngine``), the job runner, external tasks and their reports
all go through it; it knows nothing of them. A signal thrown inside a command is committed as a
job; ``run_signal_job`` (handed in by the facade) delivers it at once after the commit.

Camunda 7's ``CommandExecutor`` is the model: one ``execute(command)`` every service goes through.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from engine.bpmn import event_subprocesses, signals, task_tree
from engine.core import observe, values
from engine.core.bounded import BoundedCache
from engine.core.errors import ConcurrencyConflict, EngineError, InstanceSuspended, NotFound
from engine.core.stats import Counters
from engine.core.values import ProcessInstance
from engine.deploy import bpmnxml
from engine.deploy.deployment import ProcessModel, compile_sources
from engine.runtime import finish
from engine.runtime.codec import InstanceCodec
from engine.runtime.run import Run
from engine.runtime.services import JobContext, Services
from engine.storage.store import Store
from engine.storage.write import InstanceWrite

log = logging.getLogger("spillway.commands")

T = TypeVar("T")

#: How often a command re-runs after losing an optimistic-locking race.
CONFLICT_RETRIES = 8
CONFLICT_BACKOFF = 0.005  # seconds, doubled per retry, with full jitter
#: Parsed models kept per engine (least recently used dropped; a miss re-parses the stored
#: sources). Camunda 7's process definition cache holds 1,000 by default; a model weighs more.
MODEL_CACHE_SIZE = 500
#: Definition rows kept per engine (immutable once written; a miss is one indexed read).
DEFINITION_CACHE_SIZE = 1000

Listener = Callable[[str], None]


def has_ended(run: Run) -> bool:
    """The loaded instance has completed or was terminated: no command applies to it."""
    return run.row is not None and values.has_ended(run.row["state"])


def check_not_suspended(row: Mapping[str, Any] | None) -> None:
    """Commands on a suspended instance are refused (``InstanceSuspended``)."""
    if row is not None and row.get("suspended"):
        raise InstanceSuspended(
            f"instance {row['id']} is suspended; activate it before changing it"
        )


class Commands:
    """Load -> run -> commit, with conflict retries, for one engine's store."""

    def __init__(
        self,
        store: Store,
        services: Services,
        codec: InstanceCodec,
        stats: Counters,
        *,
        run_signal_job: Callable[[str], None],
        observer: observe.Observer = observe.NO_OBSERVER,
    ) -> None:
        self.store = store
        #: Told of every committed instance write (engine.core.observe).
        self.observer = observer
        self.services = services
        self.codec = codec
        self.stats = stats
        self._run_signal_job = run_signal_job
        self._models: BoundedCache[str, ProcessModel] = BoundedCache(MODEL_CACHE_SIZE, "models")
        self._models_lock = threading.Lock()
        self._definitions: BoundedCache[str, Mapping[str, Any]] = BoundedCache(
            DEFINITION_CACHE_SIZE, "definitions"
        )
        self._listeners: list[Listener] = []

    def caches(self) -> list[BoundedCache[Any, Any]]:
        """The caches this seam keeps, each with its bound."""
        return [self._models, self._definitions]

    # -- models -------------------------------------------------------------------------

    def model(self, definition: Mapping[str, Any]) -> ProcessModel:
        """The parsed model of a definition: cached, else re-parsed from its stored sources."""
        definition_id = str(definition["id"])
        model = self._models.get(definition_id)
        if model is not None:
            return model
        with self._models_lock:
            model = self._models.get(definition_id)
            if model is None:
                resources = self.store.resources(definition["deployment_id"])
                sources = [bpmnxml.Source(r["name"], r["content"]) for r in resources]
                found = [m for m in compile_sources(sources) if m.key == definition["key"]]
                if not found:
                    raise NotFound(f"process definition {definition['id']} has no source")
                model = found[0]
                self._models[definition_id] = model
        return model

    def remember_model(self, definition_id: str, model: ProcessModel) -> None:
        """A definition just deployed: its model is the one compiled for the deployment."""
        with self._models_lock:
            self._models[definition_id] = model

    def definition(self, definition_id: str) -> Mapping[str, Any] | None:
        # Definition rows never change once written: read each once per engine.
        definition = self._definitions.get(definition_id)
        if definition is None:
            definition = self.store.definition(definition_id)
            if definition is not None:
                self._definitions[definition_id] = definition
        return definition

    def latest_definition(self, process_key: str) -> Mapping[str, Any]:
        """The newest version of ``process_key``, as the database says now: every call looks
        up the newest id (one indexed read, so a deployment by another node is seen at once)
        and takes that id's row from the per-engine cache of immutable definition rows."""
        definition_id = self.store.latest_definition_id(process_key)
        definition = self.definition(definition_id) if definition_id is not None else None
        if definition is None:  # none deployed, or deleted between the two reads
            raise NotFound(f"no process deployed with key '{process_key}'")
        return definition

    # -- load, run, commit ----------------------------------------------------------------

    def new_run(
        self,
        definition: Mapping[str, Any],
        variables: Mapping[str, Any],
        business_key: str | None,
        instance_id: str | None = None,
    ) -> Run:
        """A run of a new instance of ``definition`` (nothing of it is stored yet)."""
        model = self.model(definition)
        run = Run.new(self.services, model, definition, variables, business_key, instance_id)
        observe.annotate(instance_id=run.instance_id, process_key=model.key)
        return run

    def load(
        self,
        instance_id: str,
        job: JobContext | None = None,
        row: dict[str, Any] | None = None,
    ) -> tuple[Run, bool]:
        """The instance as a run, and whether it had an open incident; ``row`` is its row when
        the caller has just read it."""
        if row is None:
            row = self.store.instance(instance_id)
        if row is None:
            raise NotFound(f"no process instance with id '{instance_id}'")
        definition = self.definition(row["definition_id"])
        if definition is None:
            raise NotFound(f"instance {instance_id}: definition {row['definition_id']} is gone")
        model = self.model(definition)
        observe.annotate(instance_id=instance_id, process_key=model.key)
        workflow = self.codec.load(row["data"], model.spec, model.subprocess_specs)
        event_subprocesses.install(workflow)
        run = Run(
            self.services,
            model,
            definition,
            workflow,
            row,
            instance_id=instance_id,
            business_key=row["business_key"],
            job=job,
        )
        return run, row["state"] == "incident"

    def commit(
        self,
        run: Run,
        has_open_incident: bool = False,
        adjust: Callable[[Run], None] | None = None,
    ) -> ProcessInstance:
        """Write what the run did in one transaction, wake the listeners, deliver the signals
        it threw; the instance as committed. ``adjust`` sees the filled-in write before it is
        applied (an operator's verb ending the instance, say)."""
        write = finish.instance_write(run, self.codec, has_open_incident)
        if adjust is not None:
            adjust(run)
        self.store.apply(write)
        # Inside Store.locked_instance the commit comes at the end of that block.
        self.store.on_commit(lambda: self._after_commit(write))
        return finish.snapshot(run)

    def prepare(self, run: Run, has_open_incident: bool = False) -> InstanceWrite:
        """The write of a finished run, filled in and ready for ``commit_group``."""
        return finish.instance_write(run, self.codec, has_open_incident)

    def commit_write(self, write: InstanceWrite) -> None:
        """Apply one prepared write in its own transaction, as ``commit`` does."""
        self.store.apply(write)
        self.store.on_commit(lambda: self._after_commit(write))

    def commit_group(self, writes: Sequence[InstanceWrite]) -> list[BaseException | None]:
        """Group commit: apply prepared writes of different instances in one transaction, each
        isolated from the others (``Store.apply_group``), so a write that conflicts or is
        refused rolls back alone and the others still commit. One outcome per write (None:
        committed; else its ``ConcurrencyConflict`` or ``StoreError``, for the caller to re-run
        or record). What a commit triggers (waking listeners, delivering thrown signals) runs
        once the transaction committed, for the committed writes only."""
        if not writes:
            return []
        outcomes = self.store.apply_group(writes)
        for write, outcome in zip(writes, outcomes, strict=True):
            if outcome is None:
                self._after_commit(write)
        return outcomes

    def commit_all(self, runs: Sequence[tuple[Run, bool]]) -> list[ProcessInstance]:
        """Write several runs (each with whether it had an open incident) in one transaction:
        all or none (``Store.apply_all``); then what each commit triggers."""
        writes = [finish.instance_write(run, self.codec, incident) for run, incident in runs]
        self.store.apply_all(writes)
        for write in writes:
            self._after_commit(write)
        return [finish.snapshot(run) for run, _ in runs]

    def _after_commit(self, write: InstanceWrite) -> None:
        instance = write.instance
        # An ended instance is never written again: a write in an ended state is its end.
        self.observer.instance_committed(
            instance["process_key"], write.expected_rev is None, instance["state"]
        )
        self._notify(write)
        for job in write.jobs_insert:
            if job["kind"] == signals.KIND:
                # Committed with the throw; delivered now, or by the job executor if this
                # process stops first (engine.bpmn.signals).
                with contextlib.suppress(EngineError):
                    self._run_signal_job(str(job["id"]))

    def command(self, instance_id: str, action: Callable[[Run], None]) -> ProcessInstance:
        """Load the instance, apply ``action`` to it, commit; re-run on a conflict."""

        def attempt() -> ProcessInstance:
            run, has_incident = self.load(instance_id)
            if has_ended(run):
                assert run.row is not None
                raise NotFound(f"instance {instance_id} has ended ({run.row['state']})")
            check_not_suspended(run.row)
            action(run)
            return self.commit(run, has_incident)

        with observe.step(None, instance_id=instance_id):  # its lines name the instance
            return self.retry_on_conflict(attempt)

    def retry_on_conflict(self, command: Callable[[], T]) -> T:
        """Re-run a command that lost an optimistic-locking race, on fresh state; the last
        attempt's ConcurrencyConflict reaches the caller."""
        for attempt in range(CONFLICT_RETRIES - 1):
            try:
                return self._named(command)
            except ConcurrencyConflict:
                self.stats.add("conflicts_retried")
                self.backoff(attempt)
        try:
            return self._named(command)
        except ConcurrencyConflict:
            self.stats.add("conflicts_failed")
            raise

    @staticmethod
    def backoff(attempt: int) -> None:
        time.sleep(random.uniform(0, CONFLICT_BACKOFF * (2**attempt)))

    @staticmethod
    def _named(command: Callable[[], T]) -> T:
        try:
            return command()
        except task_tree.SPIFF_FAILURES as exc:
            # SpiffWorkflow failing inside a task (e.g. completing one makes the next
            # multi-instance read a collection that is not a list): named, not raw.
            failure = task_tree.named_failure(exc)
            if failure is None:
                raise
            raise failure from exc

    # -- listeners ------------------------------------------------------------------------

    def _notify(self, write: InstanceWrite) -> None:
        if write.jobs_insert or write.jobs_update or write.external_insert or write.outbox_insert:
            self.wake(write.instance["id"])

    def wake(self, instance_id: str) -> None:
        """Tell the listeners that jobs or external tasks of ``instance_id`` were committed
        (``""``: of no instance, e.g. the timer start jobs of a deployment)."""
        for listener in list(self._listeners):
            listener(instance_id)

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    # -- signals --------------------------------------------------------------------------

    def broadcast_signal(
        self, name: str, variables: dict[str, Any], signal_id: str, exclude: str | None
    ) -> int:
        """Deliver a signal to every instance waiting for it (but ``exclude``, its thrower)
        and start every process with a matching signal start event; how many took it. Each
        instance applies one ``signal_id`` once, so a broadcast may run again."""
        ids = sorted(
            {s["instance_id"] for s in self.store.subscribers(signals.KIND, name)} - {exclude}
        )
        delivered = 0
        failures: list[EngineError] = []
        for instance_id in ids:
            try:
                self.command(
                    instance_id, lambda run: run.receive_signal(name, variables, signal_id)
                )
                delivered += 1
            except (NotFound, InstanceSuspended):
                continue  # ended meanwhile, or suspended (a suspended instance takes no signal)
            except EngineError as exc:
                # One instance failing to take it keeps none of the others from it; the failure
                # is raised once they all had their turn (a signal job then runs again, and the
                # instances that took it apply its id once).
                failures.append(exc)
        delivered += self._start_by_signal(name, variables, signal_id)
        if failures:
            raise failures[0]
        return delivered

    def _start_by_signal(self, name: str, variables: dict[str, Any], signal_id: str) -> int:
        started = 0
        for definition in self.store.latest_definitions(None).values():
            model = self.model(definition)
            if not signals.starts_process(model.spec, name):
                continue
            instance_id = signals.started_instance_id(signal_id, str(definition["id"]))
            if self.store.instance(instance_id) is not None:
                continue  # this signal started it already (its job runs again)
            run = Run.new(self.services, model, definition, {}, None, instance_id=instance_id)
            run.begin_by_signal(name, variables, signal_id)
            self.commit(run)
            started += 1
        return started


__all__ = ["CONFLICT_RETRIES", "Commands", "check_not_suspended", "has_ended"]
