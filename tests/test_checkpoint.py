"""SQLite WAL checkpoints run on a thread of their own, not inside the callers' commits
(``engine.storage.checkpoint``)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.storage import checkpoint
from tests.bpmnbuild import process, user


def eventually(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.01)


def test_commits_are_checkpointed_off_the_callers_thread(tmp_path: Path) -> None:
    path = tmp_path / "spillway.db"
    eng = ProcessEngine(f"sqlite:///{path}")
    eng.deploy(process("p", user("U")))
    ids = [eng.start("p").id for _ in range(checkpoint.EVERY_COMMITS + 10)]
    cp = eng.store.checkpointer
    assert cp is not None
    eventually(lambda: cp.runs >= 1, "a checkpoint after EVERY_COMMITS commits")
    with eng.store.engine.connect() as conn:
        # The callers' own connections checkpoint only far past that (a bound on the WAL).
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert pages == checkpoint.FALLBACK_PAGES
    eng.close()
    assert not cp.running
    # close() checkpointed what was left: the database file alone holds every instance.
    raw = sqlite3.connect(path)
    busy, wal_frames, done = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, wal_frames - done) == (0, 0)
    assert raw.execute("SELECT count(*) FROM sw_instances").fetchone()[0] == len(ids)
    raw.close()


def test_an_idle_engine_holds_no_checkpoint_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "IDLE_EXIT", 0.05)
    monkeypatch.setattr(checkpoint, "INTERVAL", 0.01)
    eng = ProcessEngine(f"sqlite:///{tmp_path / 'spillway.db'}")
    eng.deploy(process("p", user("U")))
    cp = eng.store.checkpointer
    assert cp is not None
    before = cp.runs
    eng.start("p")
    eventually(lambda: cp.runs > before, "the checkpoint after a commit")
    eventually(lambda: not cp.running, "the idle thread's end")
    inst = eng.start("p")  # the next commit starts a thread again
    eventually(lambda: cp.runs > before + 1, "a checkpoint by the new thread")
    assert eng.get_instance(inst.id).waiting_at == ["U"]
    eng.close()


def test_an_in_memory_database_has_no_checkpointer() -> None:
    eng = ProcessEngine("sqlite://")
    assert eng.store.checkpointer is None
    eng.close()
