"""Group commit of jobs: a batch of jobs of different instances is run one job after another and
committed in one transaction, each job's write isolated from the others'. One job's conflict,
failure or refused write is settled alone (re-run on fresh state, retried with backoff, or
counted as a failed attempt, as a job run on its own is); the others commit once. A process
killed in the middle of a batch loses nothing: the jobs whose writes never committed run again
once their locks expire, and every job's outcome is committed exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine import ProcessEngine, RetryPolicy, TaskContext
from engine.core.errors import ConcurrencyConflict, StoreError
from engine.storage.write import InstanceWrite
from engine.testing import ManualClock
from engine.work.job_runner import new_owner
from tests.bpmnbuild import process, service
from tests.test_core import table_counts

NO_JITTER = RetryPolicy(retries=3, initial_delay=10, backoff_coefficient=2, jitter=0)


def failed_once(eng: ProcessEngine, count: int, handler: object) -> list[str]:
    """``count`` instances whose handler failed its synchronous attempt: one retry job each."""
    first: set[str] = set()

    def flaky(ctx: TaskContext) -> object:
        if ctx.instance_id not in first:
            first.add(ctx.instance_id)
            raise ConnectionError("the synchronous attempt fails")
        return handler(ctx)  # type: ignore[operator]

    eng.register_handler("flaky", flaky)
    eng.deploy(process("p", service("Work", "flaky")))
    ids = [eng.start("p", variables={"n": n}).id for n in range(count)]
    assert all(len(eng.jobs(i)) == 1 for i in ids)
    return ids


def completed_rows(eng: ProcessEngine, instance_id: str) -> int:
    return sum(
        1 for h in eng.history(instance_id) if h.activity_id == "Work" and h.outcome == "completed"
    )


def test_a_batch_of_jobs_commits_in_one_group(eng: ProcessEngine, clock: ManualClock) -> None:
    calls: list[str] = []
    ids = failed_once(eng, 6, lambda ctx: calls.append(ctx.instance_id) or {"ok": True})
    clock.advance(3600)
    owner = new_owner("test")
    rows = eng.job_runner.acquire(owner, 10)
    assert len(rows) == 6
    transactions: list[int] = []
    apply_group = eng.store.apply_group

    def counting(writes: list[InstanceWrite]) -> list[BaseException | None]:
        transactions.append(len(writes))
        return apply_group(writes)

    eng.store.apply_group = counting  # type: ignore[method-assign]
    assert eng.job_runner.execute_batch(rows, owner) == [True] * 6
    assert transactions == [6]  # one group commit for the six jobs
    assert sorted(calls) == sorted(ids)
    for iid in ids:
        inst = eng.get_instance(iid)
        assert inst.state == "completed" and inst.variables["ok"] is True
        assert completed_rows(eng, iid) == 1
    assert eng.jobs() == []


def test_an_acquirer_goes_on_past_jobs_another_acquirer_is_taking(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    """Two acquirers at the same moment see the same first due jobs. While one holds their
    instances (it is locking them), the other takes the next ones instead of coming back
    empty; no job is taken twice."""
    if eng.store.dialect != "postgresql":
        pytest.skip("on SQLite acquirers take turns (BEGIN IMMEDIATE)")
    failed_once(eng, 6, lambda ctx: {"ok": True})
    clock.advance(3600)
    first = sorted(eng.jobs(), key=lambda j: (j.due_at, j.id))[:3]
    other = sa.create_engine(eng.store.url)
    try:
        with other.connect() as conn:
            # As the other acquirer does between its choice and its commit.
            for job in first:
                conn.execute(
                    sa.text("SELECT id FROM sw_instances WHERE id = :i FOR UPDATE"),
                    {"i": job.instance_id},
                )
            taken = eng.job_runner.acquire(new_owner("test"), 3)
            conn.rollback()
    finally:
        other.dispose()
    assert len(taken) == 3
    assert {j["id"] for j in taken}.isdisjoint({j.id for j in first})
    # The first three are free again once the other acquirer let go of them.
    assert {j["id"] for j in eng.job_runner.acquire(new_owner("test"), 10)} == {j.id for j in first}


def test_one_job_whose_instance_moved_on_reruns_alone(
    eng: ProcessEngine, clock: ManualClock
) -> None:
    """Job 3's instance is changed by a user call after its run and before the group commits:
    its write conflicts and is rolled back alone; the others commit once, and job 3 runs once
    more on fresh state (as a job run on its own does)."""
    calls: dict[str, int] = {}
    ids: list[str] = []

    def handler(ctx: TaskContext) -> dict[str, object]:
        calls[ctx.instance_id] = calls.get(ctx.instance_id, 0) + 1
        if ctx.instance_id == ids[3] and calls[ctx.instance_id] == 1:
            eng.set_variables(ctx.instance_id, {"touched": True})  # commits: rev moves on
        return {"ok": True}

    ids.extend(failed_once(eng, 6, handler))
    clock.advance(3600)
    assert eng.run_jobs() == 6
    assert calls == {iid: 2 if iid == ids[3] else 1 for iid in ids}
    for iid in ids:
        inst = eng.get_instance(iid)
        assert inst.state == "completed", inst
        assert completed_rows(eng, iid) == 1
    assert eng.get_instance(ids[3]).variables["touched"] is True  # the user's write survived
    assert eng.jobs() == [] and eng.incidents() == []


def test_one_failing_job_is_retried_with_backoff_and_the_others_commit(
    make_engine: object, clock: ManualClock
) -> None:
    """Instances 2 and 5 fail again. Instance 5's job runs on its own (``execute_job``), the
    other five as one group: instance 2's job is left exactly as instance 5's (attempts,
    retries, backoff, error), the others commit once; their retries run out into incidents."""
    eng = make_engine(retry_policy=NO_JITTER)  # type: ignore[operator]
    ids: list[str] = []
    calls: list[str] = []

    def handler(ctx: TaskContext) -> dict[str, object]:
        calls.append(ctx.instance_id)
        if ctx.instance_id in (ids[2], ids[5]):
            raise TimeoutError(f"attempt {ctx.attempt} timed out")
        return {"ok": True}

    ids.extend(failed_once(eng, 6, handler))
    clock.advance(3600)
    [alone] = eng.jobs(ids[5])
    eng.execute_job(alone.id)
    assert eng.run_jobs() == 5
    assert sorted(calls) == sorted(ids)
    for iid in ids:
        if iid not in (ids[2], ids[5]):
            assert eng.get_instance(iid).state == "completed"
            assert completed_rows(eng, iid) == 1
    [grouped], [single] = eng.jobs(ids[2]), eng.jobs(ids[5])
    assert grouped.attempts == single.attempts >= 1
    assert grouped.retries_left == single.retries_left == NO_JITTER.retries - 1
    assert grouped.due_at == single.due_at > clock.now()
    assert grouped.last_error == single.last_error
    assert "timed out" in (grouped.last_error or "")
    for _ in range(NO_JITTER.retries):
        clock.advance(3600)
        eng.run_jobs()
    for iid in (ids[2], ids[5]):
        [incident] = eng.incidents(iid)
        assert incident.activity_id == "Work" and "timed out" in incident.message
        assert eng.get_instance(iid).state == "incident"


def test_a_refused_write_and_a_stale_write_roll_back_alone(eng: ProcessEngine) -> None:
    """Store.apply_group: the first write commits; the second (a duplicate job id, refused by
    the database) and the third (a stale revision) leave no trace; outcomes in order."""
    eng.register_handler("flaky", lambda ctx: (_ for _ in ()).throw(ConnectionError("down")))
    eng.deploy(process("p", service("B", "flaky")))
    rows = []
    for _ in range(3):
        inst = eng.start("p")
        row = eng.store.instance(inst.id)
        assert row is not None
        rows.append(row)
    jobs = {j["instance_id"]: j for j in eng.store.jobs()}
    before = table_counts(eng)
    good = InstanceWrite(
        instance=dict(rows[0], rev=rows[0]["rev"] + 1, variables={"good": True}),
        expected_rev=rows[0]["rev"],
        jobs_delete=[jobs[rows[0]["id"]]["id"]],
    )
    refused = InstanceWrite(
        instance=dict(rows[1], rev=rows[1]["rev"] + 1, state="completed"),
        expected_rev=rows[1]["rev"],
        jobs_insert=[jobs[rows[2]["id"]]],  # a job that stays (the stale write is undone)
    )
    stale = InstanceWrite(
        instance=dict(rows[2], rev=rows[2]["rev"] + 1, state="completed"),
        expected_rev=rows[2]["rev"] - 1,
        jobs_delete=[jobs[rows[2]["id"]]["id"]],
    )
    woken: list[str] = []
    eng.commands.add_listener(woken.append)
    outcomes = eng.commands.commit_group([good, refused, stale])
    assert outcomes[0] is None
    assert isinstance(outcomes[1], StoreError) and "refused" in str(outcomes[1])
    assert isinstance(outcomes[2], ConcurrencyConflict)
    assert eng.store.instance(str(rows[0]["id"]))["variables"] == {"good": True}  # type: ignore[index]
    assert eng.store.instance(str(rows[1]["id"])) == rows[1]
    assert eng.store.instance(str(rows[2]["id"])) == rows[2]
    after = table_counts(eng)
    assert after["sw_jobs"] == before["sw_jobs"] - 1  # only the good write's delete
    assert {k: v for k, v in after.items() if k != "sw_jobs"} == {
        k: v for k, v in before.items() if k != "sw_jobs"
    }
    assert woken == []  # none of them created work; the refused one's job insert is gone


def test_only_committed_writes_wake_listeners(eng: ProcessEngine) -> None:
    eng.register_handler("flaky", lambda ctx: (_ for _ in ()).throw(ConnectionError("down")))
    eng.deploy(process("p", service("B", "flaky")))
    rows = []
    for _ in range(2):
        row = eng.store.instance(eng.start("p").id)
        assert row is not None
        rows.append(row)
    job = eng.store.jobs()[0]
    woken: list[str] = []
    eng.commands.add_listener(woken.append)
    writes = [
        InstanceWrite(
            instance=dict(r, rev=r["rev"] + 1),
            expected_rev=r["rev"] - (1 if n else 0),  # the second is stale
            jobs_insert=[dict(job, id=f"new-{n}", instance_id=r["id"])],
        )
        for n, r in enumerate(rows)
    ]
    outcomes = eng.commands.commit_group(writes)
    assert outcomes[0] is None and isinstance(outcomes[1], ConcurrencyConflict)
    assert woken == [rows[0]["id"]]
    assert {j.id for j in eng.jobs()} >= {"new-0"}
    assert "new-1" not in {j.id for j in eng.jobs()}


CRASH_APP = textwrap.dedent(
    """
    import os, signal
    from engine import ProcessEngine, RetryPolicy

    def make():
        eng = ProcessEngine(os.environ["SPILLWAY_DB"],
                            retry_policy=RetryPolicy(retries=3, initial_delay=0.01, jitter=0))
        log = os.environ["ATTEMPT_LOG"]
        crash_at = int(os.environ.get("CRASH_AT", "0"))

        def flaky(ctx):
            if ctx.attempt == 1:
                raise ConnectionError("the synchronous attempt fails")
            with open(log, "a") as f:
                f.write(f"{ctx.instance_id} {os.getpid()}\\n")
            with open(log) as f:
                attempts = sum(1 for _ in f)
            if crash_at and attempts == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)  # mid-group: earlier jobs ran, none committed
            return {"pid": os.getpid()}

        eng.register_handler("flaky", flaky)
        return eng
    """
)


def test_a_process_killed_mid_group_loses_nothing(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "attempts.log"
    (tmp_path / "crashgroup.py").write_text(CRASH_APP)
    env = dict(os.environ, SPILLWAY_DB=db_url, ATTEMPT_LOG=str(log))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    monkeypatch.setenv("SPILLWAY_DB", db_url)
    monkeypatch.setenv("ATTEMPT_LOG", str(tmp_path / "sync.log"))
    sys.path.insert(0, str(tmp_path))
    try:
        import crashgroup  # type: ignore[import-not-found]

        eng: ProcessEngine = crashgroup.make()
    finally:
        sys.path.remove(str(tmp_path))
    eng.deploy(process("crash", service("Flaky", "flaky")))
    ids = [eng.start("crash").id for _ in range(20)]
    time.sleep(0.05)  # every retry job is due
    command = [
        sys.executable,
        "-c",
        "from engine.cli.main import main; raise SystemExit(main())",
        "--app",
        "crashgroup:make",
        "worker",
        "--workers",
        "1",
        "--lock-duration",
        "1",
        "--max-idle-wait",
        "0.1",
        "--exit-when-idle",
    ]
    # The 5th attempt kills the worker: its group's first four jobs ran, nothing committed.
    victim = subprocess.run(command, env=dict(env, CRASH_AT="5"), capture_output=True, timeout=120)
    assert victim.returncode == -signal.SIGKILL, victim.stderr.decode()[-2000:]
    assert all(eng.get_instance(i).state == "active" for i in ids)  # no write of the group
    assert len(eng.jobs()) == 20
    time.sleep(1.1)  # the dead worker's locks expire
    survivor = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert survivor.returncode == 0, survivor.stderr.decode()[-2000:]
    assert eng.jobs() == [] and eng.incidents() == []
    for iid in ids:
        inst = eng.get_instance(iid)
        assert inst.state == "completed"
        assert completed_rows_of(eng, iid) == 1  # committed exactly once
    attempts = [line.split() for line in log.read_text().splitlines()]
    by_instance: dict[str, int] = {}
    for iid, _pid in attempts:
        by_instance[iid] = by_instance.get(iid, 0) + 1
    assert set(by_instance) == set(ids)
    # Only the attempts of the killed group ran twice; every other ran once.
    assert sum(1 for n in by_instance.values() if n == 2) == 5
    assert all(n in (1, 2) for n in by_instance.values())
    eng.close()


def completed_rows_of(eng: ProcessEngine, instance_id: str) -> int:
    return sum(
        1 for h in eng.history(instance_id) if h.activity_id == "Flaky" and h.outcome == "completed"
    )
