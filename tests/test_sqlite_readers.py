"""A SQLite file's per-thread read connections (engine.storage.sqlite_readers)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from engine import ProcessEngine
from engine.storage.sqlite_readers import ThreadReaders
from tests.bpmnbuild import process, user


def test_each_thread_reads_on_a_connection_of_its_own(tmp_path: Path) -> None:
    readers = ThreadReaders(str(tmp_path / "r.db"), 1000)
    mine = readers.connection()
    assert mine is not None and readers.connection() is mine
    theirs: list[sqlite3.Connection | None] = []
    thread = threading.Thread(target=lambda: theirs.append(readers.connection()))
    thread.start()
    thread.join()
    assert theirs[0] is not None and theirs[0] is not mine
    readers.close()
    # Closed for every thread; later reads go through the pool.
    assert readers.connection() is None
    with pytest.raises(sqlite3.ProgrammingError):
        mine.execute("SELECT 1")


def test_a_start_sees_at_once_what_another_process_deployed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nodes.db'}"
    starter, deployer = ProcessEngine(url), ProcessEngine(url)
    try:
        deployer.deploy(process("p", user("V1")))
        assert starter.start("p").waiting_at == ["V1"]
        deployer.deploy(process("p", user("V2")))
        assert starter.start("p").waiting_at == ["V2"]
    finally:
        starter.close()
        deployer.close()


def test_a_broken_read_connection_is_replaced_and_the_read_repeated(tmp_path: Path) -> None:
    eng = ProcessEngine(f"sqlite:///{tmp_path / 'broken.db'}")
    try:
        eng.deploy(process("p", user("U")))
        assert eng.start("p").waiting_at == ["U"]
        readers = eng.store._readers
        assert readers is not None
        broken = readers.connection()
        assert broken is not None
        broken.close()  # as if the file handle were lost under it
        assert eng.start("p").waiting_at == ["U"]
        assert readers.connection() is not broken
    finally:
        eng.close()
