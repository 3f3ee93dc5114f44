"""Worker pools: threads draining external tasks with ordinary handlers, their failures and
retries, graceful stop, pools on several engines sharing a database, and the pools file."""

from __future__ import annotations

import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from engine import ProcessEngine, RetryPolicy, TaskContext
from engine.cli.main import main
from engine.core.errors import EngineError
from engine.testing import ManualClock
from engine.work.pool import WorkerPool, load_pools
from processes import example_process_handlers as example
from tests.conftest import EXAMPLES, EngineFactory


def deploy_example(eng: ProcessEngine) -> None:
    example.register(eng)
    eng.deploy(EXAMPLES / "example_process.bpmn")


def start_examples(eng: ProcessEngine, instances: int, files: int = 50) -> list[str]:
    return [
        eng.start("ExampleProcess", {"files": example.files(files)}).id for _ in range(instances)
    ]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def all_completed(eng: ProcessEngine, ids: list[str]) -> bool:
    return all(eng.get_instance(i).state == "completed" for i in ids)


def ended_once(eng: ProcessEngine, instance_id: str) -> bool:
    ends = [
        h
        for h in eng.history(instance_id)
        if h.activity_id == "EndEvent_Copied" and h.outcome == "completed"
    ]
    return len(ends) == 1


class Flaky:
    """Fails the first ``failures`` calls per file, then copies."""

    def __init__(self, failures: int, error: type[Exception] = TimeoutError) -> None:
        self.failures = failures
        self.error = error
        self.attempts: Counter[str] = Counter()
        self.contexts: list[TaskContext] = []
        self.lock = threading.Lock()

    def __call__(self, ctx: TaskContext) -> dict[str, object]:
        with self.lock:
            self.contexts.append(ctx)
            self.attempts[ctx.variables["file"]] += 1
            failing = self.attempts[ctx.variables["file"]] <= self.failures
        if failing:
            raise self.error(f"copy of {ctx.variables['file']} timed out")
        return {"copy": ctx.variables["file"]}


def test_a_pool_drains_the_example_process(eng: ProcessEngine) -> None:
    deploy_example(eng)
    ids = start_examples(eng, 3)
    with eng.worker_pool("copy", core_size=2, max_size=4, max_per_acquisition=50) as pool:
        wait_until(lambda: all_completed(eng, ids))
    assert pool.stats["completed"] == 150 and pool.stats["fetched"] == 150
    assert pool.stats["duplicates"] == 0 and pool.stats["failed"] == 0
    for iid in ids:
        assert ended_once(eng, iid)
        copies = eng.get_instance(iid).variables["copies"]
        assert sorted(c["from"] for c in copies) == example.files(50)
    assert eng.external_tasks.list() == []


def test_a_pool_wakes_on_new_tasks_without_waiting_for_its_poll(eng: ProcessEngine) -> None:
    deploy_example(eng)
    with eng.worker_pool("copy", acquire_wait=60.0):
        time.sleep(0.1)  # the pool found nothing and waits (up to a minute)
        [iid] = start_examples(eng, 1, files=3)
        wait_until(lambda: all_completed(eng, [iid]), timeout=10)


def test_a_pool_wakes_on_tasks_another_node_commits(make_engine: EngineFactory) -> None:
    # PostgreSQL: LISTEN/NOTIFY; a SQLite file: its data_version, watched.
    starter, worker = make_engine(), make_engine()
    deploy_example(starter)
    example.register(worker)
    with worker.worker_pool("copy", acquire_wait=60.0):
        time.sleep(0.3)  # the pool found nothing and waits (up to a minute)
        [iid] = start_examples(starter, 1, files=3)
        wait_until(lambda: all_completed(starter, [iid]), timeout=10)


def test_a_failing_handler_is_retried_with_backoff_then_succeeds(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    # The example's "Copy file" has camunda:failedJobRetryTimeCycle R3/PT5S.
    flaky = Flaky(failures=2)
    example.register(eng)
    eng.deploy(EXAMPLES / "example_process.bpmn")
    [iid] = start_examples(eng, 1, files=2)
    pool = eng.worker_pool("copy", flaky, max_per_acquisition=10)
    assert pool.run_once() == 2
    assert pool.stats["failed"] == 2
    tasks = eng.external_tasks.list()
    assert {t.retries for t in tasks} == {3} and {t.attempts for t in tasks} == {1}
    assert {t.due_at for t in tasks} == {clock.now() + timedelta(seconds=5)}
    assert pool.run_once() == 0  # not due yet
    clock.advance(5)
    assert pool.run_once() == 2
    assert {t.retries for t in eng.external_tasks.list()} == {2}
    clock.advance(5)
    assert pool.run_once() == 2
    inst = eng.get_instance(iid)
    assert inst.state == "completed" and sorted(inst.variables["copies"]) == example.files(2)
    assert sorted(c.attempt for c in flaky.contexts) == [1, 1, 2, 2, 3, 3]
    # One idempotency key per task across its attempts.
    assert len({c.idempotency_key for c in flaky.contexts}) == 2
    assert eng.incidents(iid) == []


def test_retries_spent_in_a_pool_open_an_incident_that_retry_resolves(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    flaky = Flaky(failures=4)
    deploy_example(eng)
    [iid] = start_examples(eng, 1, files=1)
    pool = eng.worker_pool("copy", flaky)
    for _ in range(4):  # the first attempt and three retries (R3/PT5S)
        assert pool.run_once() == 1
        clock.advance(5)
    [incident] = eng.incidents(iid)
    assert incident.kind == "failed-external-task" and "timed out" in incident.message
    assert "TimeoutError" in (incident.stacktrace or "")
    assert eng.get_instance(iid).state == "incident"
    assert pool.run_once() == 0
    eng.retry(incident.id)
    assert pool.run_once() == 1
    assert eng.get_instance(iid).state == "completed"


def test_a_non_retryable_error_opens_an_incident_at_once(make_engine: EngineFactory) -> None:
    eng = make_engine(retry_policy=RetryPolicy(non_retryable=(PermissionError,)))
    flaky = Flaky(failures=1, error=PermissionError)
    example.register(eng)
    eng.deploy(EXAMPLES / "example_process.bpmn")
    [iid] = start_examples(eng, 1, files=1)
    assert eng.worker_pool("copy", flaky).run_once() == 1
    [incident] = eng.incidents(iid)
    assert "PermissionError" in incident.message


def test_a_pool_with_threads_retries_after_the_backoff(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    flaky = Flaky(failures=1)
    example.register(eng)
    eng.deploy(EXAMPLES / "example_process.bpmn")
    [iid] = start_examples(eng, 1, files=4)
    with eng.worker_pool("copy", flaky, acquire_wait=0.05) as pool:
        wait_until(lambda: pool.stats["failed"] == 4)
        clock.advance(5)
        pool.wake()
        wait_until(lambda: all_completed(eng, [iid]))
    assert pool.stats["completed"] == 4


def test_stop_finishes_the_running_task_and_unlocks_the_queued_ones(
    eng: ProcessEngine,
) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(ctx: TaskContext) -> dict[str, object]:
        started.set()
        assert release.wait(10)
        return {"copy": ctx.variables["file"]}

    example.register(eng)
    eng.deploy(EXAMPLES / "example_process.bpmn")
    [iid] = start_examples(eng, 1, files=5)
    pool = eng.worker_pool("copy", slow, core_size=1, max_size=1, max_per_acquisition=5)
    pool.start()
    assert started.wait(10)
    stopper = threading.Thread(target=pool.stop, kwargs={"timeout": 10})
    stopper.start()
    # The four queued tasks are handed back while the running one is still running.
    wait_until(lambda: pool.stats["unlocked"] == 4, timeout=10)
    assert stopper.is_alive()
    unlocked = eng.external_tasks.fetch_and_lock("other", ["copy"], max_tasks=10)
    assert len(unlocked) == 4
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert pool.stats["completed"] == 1 and pool.threads == 0
    for task in unlocked:
        assert eng.external_tasks.complete(task.id, "other", {"copy": task.variables["file"]})
    assert eng.get_instance(iid).state == "completed"


def test_threads_grow_with_the_backlog_and_shrink_when_idle(eng: ProcessEngine) -> None:
    def copy(ctx: TaskContext) -> dict[str, object]:
        time.sleep(0.01)
        return {"copy": ctx.variables["file"]}

    example.register(eng)
    eng.deploy(EXAMPLES / "example_process.bpmn")
    ids = start_examples(eng, 2, files=20)
    most = 0
    with eng.worker_pool(
        "copy", copy, core_size=1, max_size=4, keep_alive=0.2, max_per_acquisition=20
    ) as pool:
        while not all_completed(eng, ids):
            most = max(most, pool.threads)
            time.sleep(0.005)
        assert most > 1
        wait_until(lambda: pool.threads == 1, timeout=10)


def test_two_pools_on_two_engines_share_the_work(make_engine: EngineFactory) -> None:
    handled: dict[str, list[str]] = {"a": [], "b": []}

    def copier(name: str) -> Callable[[TaskContext], dict[str, object]]:
        def copy(ctx: TaskContext) -> dict[str, object]:
            handled[name].append(ctx.idempotency_key)
            time.sleep(0.002)
            return {"copy": ctx.variables["file"]}

        return copy

    node_a, node_b = make_engine(), make_engine()
    deploy_example(node_a)
    ids = start_examples(node_a, 4)
    pool_a = node_a.worker_pool("copy", copier("a"), max_size=2, max_per_acquisition=5)
    pool_b = node_b.worker_pool("copy", copier("b"), max_size=2, max_per_acquisition=5)
    with pool_a, pool_b:
        wait_until(lambda: all_completed(node_b, ids), timeout=60)
    assert handled["a"] and handled["b"]
    everything = handled["a"] + handled["b"]
    assert len(everything) == len(set(everything)) == 200
    assert all(ended_once(node_a, iid) for iid in ids)


def test_a_crashed_pools_tasks_come_back_after_their_locks_expire(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    crashed, alive = make_engine(), make_engine()
    deploy_example(crashed)
    example.register(alive)
    [iid] = start_examples(crashed, 1, files=10)
    # What a pool that died mid-batch leaves: its locks, never completed.
    held = crashed.worker_pool("copy", lock_duration=30, max_per_acquisition=10)
    taken = crashed.external_tasks.fetch_and_lock(held.worker_id, ["copy"], 10, lock_duration=30)
    assert len(taken) == 10
    crashed.close()
    with alive.worker_pool("copy", acquire_wait=0.05) as pool:
        time.sleep(0.2)
        assert pool.stats["fetched"] == 0
        clock.advance(31)
        pool.wake()
        wait_until(lambda: all_completed(alive, [iid]))
    assert pool.stats["completed"] == 10


def test_worker_pool_arguments_are_checked(eng: ProcessEngine) -> None:
    with pytest.raises(EngineError, match="none registered under 'nothing'"):
        eng.worker_pool("nothing")
    example.register(eng)
    with pytest.raises(EngineError, match="max_size 1 < core_size 2"):
        eng.worker_pool("copy", core_size=2, max_size=1)
    with pytest.raises(EngineError, match="max_per_acquisition"):
        eng.worker_pool("copy", max_per_acquisition=0)
    with pytest.raises(EngineError, match="lock_duration"):
        eng.worker_pool("copy", lock_duration=0)
    pool = eng.worker_pool("copy")
    assert isinstance(pool, WorkerPool) and pool.handler is example.copy_file
    # The defaults: threads for I/O-bound handlers, a fetch that takes a 50-fold
    # multi-instance in one go; a defaulted core size never exceeds a max_size given.
    assert (pool.core_size, pool.max_size, pool.max_per_acquisition) == (4, 8, 100)
    small = eng.worker_pool("copy", max_size=2)
    assert (small.core_size, small.max_size, small.max_per_acquisition) == (2, 2, 100)


# -- the pools file and ``spillway worker --pools`` -----------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_load_pools_reads_sizes_and_handlers(eng: ProcessEngine, tmp_path: Path) -> None:
    example.register(eng)
    eng.register_handler("other-copy", example.copy_file)
    path = write(
        tmp_path / "pools.toml",
        """
        [pools.copy]
        core_size = 2
        max_size = 5
        max_per_acquisition = 20
        lock_duration = 90.5

        [pools.archive]
        handler = "other-copy"
        """,
    )
    copy, archive = load_pools(eng, path)
    assert (copy.topic, copy.core_size, copy.max_size) == ("copy", 2, 5)
    assert copy.max_per_acquisition == 20 and copy.lock_duration == 90.5
    assert archive.topic == "archive" and archive.handler is example.copy_file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pools.copy]\ncolour = 1\n", "pools.copy: unknown key 'colour'"),
        ("[pools.copy]\ncore_size = 'two'\n", "pools.copy.core_size: expected int"),
        ("[pools.copy]\nhandler = 'nope'\n", "no handler registered under 'nope'"),
        ("[workers]\n", "expected \\[pools.<topic>\\] tables"),
        ("[pools.copy\n", "not valid TOML"),
        ("[pools.copy]\nmax_size = 0\n", "max_size must be an int >= 1"),
    ],
)
def test_bad_pools_files_name_the_file_and_key(
    eng: ProcessEngine, tmp_path: Path, text: str, message: str
) -> None:
    example.register(eng)
    path = write(tmp_path / "pools.toml", text)
    with pytest.raises(EngineError, match=message) as info:
        load_pools(eng, path)
    assert str(path) in str(info.value)


def test_spillway_worker_runs_the_pools_of_a_file(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = write(
        tmp_path / "pool_app.py",
        """
        from engine import ProcessEngine
        from processes import example_process_handlers


        def make(db):
            engine = ProcessEngine(db)
            example_process_handlers.register(engine)
            return engine
        """,
    )
    pools = write(tmp_path / "pools.toml", "[pools.copy]\nmax_size = 2\nmax_per_acquisition = 50\n")
    with ProcessEngine(db_url) as eng:
        deploy_example(eng)
        ids = start_examples(eng, 2, files=20)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    args = ["--db", db_url, "--app", f"{app.stem}:make", "worker", "--workers", "1"]
    code = main([*args, "--pools", str(pools), "--exit-when-idle", "--max-idle-wait", "0.1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "worker pool" in out and "topic 'copy'" in out
    assert "(topic 'copy'): 40 tasks completed" in out  # the pools' progress, not "0 jobs"
    with ProcessEngine(db_url) as eng:
        assert all_completed(eng, ids)


def test_spillway_worker_reports_a_bad_pools_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pools = write(tmp_path / "pools.toml", "[pools.copy]\n")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["--db", db, "worker", "--pools", str(pools), "--exit-when-idle"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spillway: error:") and "no handler registered under 'copy'" in err
