"""A SQLite file's per-thread read connections (engine.storage.thread_readers)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine import ProcessEngine
from engine.core.errors import StoreError
from engine.storage import driver
from engine.storage import schema as t
from engine.storage.thread_readers import ThreadReaders
from engine.storage.write import InstanceWrite
from tests.bpmnbuild import process, user


def test_each_thread_reads_on_a_connection_of_its_own(tmp_path: Path) -> None:
    readers = ThreadReaders(sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}"))
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


def test_a_disposed_pool_replaces_the_kept_connections(tmp_path: Path) -> None:
    """``Engine.dispose()`` (after a lost connection, or a test's statement recorder) replaces
    every connection: the per-thread readers and the kept write connection too."""
    eng = ProcessEngine(f"sqlite:///{tmp_path / 'disposed.db'}")
    try:
        eng.deploy(process("p", user("U")))
        eng.start("p")
        readers = eng.store._readers
        assert readers is not None
        reader, writer = readers.connection(), eng.store._writer
        assert reader is not None and writer is not None
        seen: list[object] = []
        sa.event.listen(eng.store.engine, "connect", lambda dbapi, _rec: seen.append(dbapi))
        eng.store.engine.dispose()
        assert eng.start("p").waiting_at == ["U"]
        # Both reopened by the new pool, through the engine's connect hooks.
        assert readers.connection() is not reader and readers.connection() in seen
        assert eng.store._writer is not writer and writer.closed
        assert len(seen) == 2
    finally:
        eng.close()


def test_a_failed_write_keeps_the_write_connection_usable(tmp_path: Path) -> None:
    eng = ProcessEngine(f"sqlite:///{tmp_path / 'failed.db'}")
    try:
        eng.deploy(process("p", user("U")))
        first = eng.start("p")
        writer = eng.store._writer
        row = eng.store.instance(first.id)
        assert row is not None and writer is not None
        duplicate = InstanceWrite(instance=dict(row), expected_rev=None)
        with pytest.raises(StoreError, match="write refused by the database"):
            eng.store.apply(duplicate)  # the same instance id again: the insert fails
        # Rolled back cleanly: the same connection, no transaction left open, writes go on.
        assert eng.store._writer is writer and not writer.in_transaction()
        assert not driver.in_transaction(writer)
        assert eng.start("p").waiting_at == ["U"]
        assert len(eng.instances(process_key="p")) == 2
    finally:
        eng.close()


def test_a_write_connection_left_mid_transaction_is_replaced(tmp_path: Path) -> None:
    eng = ProcessEngine(f"sqlite:///{tmp_path / 'mid.db'}")
    try:
        eng.deploy(process("p", user("U")))
        eng.start("p")
        writer = eng.store._writer
        assert writer is not None

        def interrupted() -> None:
            with eng.store._connection(write=True) as conn:
                conn.begin()
                raise KeyboardInterrupt  # before its commit or rollback

        with pytest.raises(KeyboardInterrupt):
            interrupted()
        assert eng.store._writer is None and writer.closed
        assert eng.start("p").waiting_at == ["U"]
    finally:
        eng.close()


@pytest.mark.postgres
def test_postgresql_reads_on_a_bounded_set_of_autocommit_connections() -> None:
    """On PostgreSQL each thread's newest-definition read runs on a connection of its own, in
    autocommit (no transaction is left open between reads, which would hold back vacuum), and
    no more than ``PG_READERS`` such server connections are opened: threads beyond read
    through the pool, and every start still takes the newest version."""
    from engine.storage import store as store_mod
    from tests.conftest import pg_url, reset_pg

    url = pg_url()
    reset_pg(url)
    starter, deployer = ProcessEngine(url), ProcessEngine(url)
    try:
        deployer.deploy(process("p", user("V1")))
        assert starter.start("p").waiting_at == ["V1"]
        readers = starter.store._readers
        assert readers is not None
        mine = readers.connection()
        assert mine is not None and mine.autocommit
        assert mine.info.transaction_status == 0  # idle: nothing left open by the read
        deployer.deploy(process("p", user("V2")))
        threads = store_mod.PG_READERS + 3
        seen: list[list[str]] = []
        started, done = threading.Barrier(threads), threading.Barrier(threads + 1)
        release = threading.Event()

        def start() -> None:
            started.wait()
            seen.append(starter.start("p").waiting_at)
            done.wait()
            release.wait()  # every thread alive, each keeping what it opened

        workers = [threading.Thread(target=start) for _ in range(threads)]
        for worker in workers:
            worker.start()
        try:
            done.wait()
            assert len(readers._open) == store_mod.PG_READERS  # the main thread's included
        finally:
            release.set()
            for worker in workers:
                worker.join()
        assert seen == [["V2"]] * threads
        # A thread that ended closed its connection.
        assert len(readers._open) == 1 and mine.info.transaction_status == 0
    finally:
        starter.close()
        deployer.close()


def test_a_write_on_the_kept_connection_is_one_transaction_across_both_paths(
    tmp_path: Path,
) -> None:
    """The kept write connection begins and commits on the driver; a statement through
    SQLAlchemy inside joins that transaction: committed together, or rolled back together."""
    eng = ProcessEngine(f"sqlite:///{tmp_path / 'both.db'}")
    try:
        eng.deploy(process("p", user("U")))
        first, second = eng.start("p"), eng.start("p")
        rename = t.instances.update().where(t.instances.c.id == sa.bindparam("b_id"))
        bump = driver.DriverStatement(
            t.instances.update()
            .where(t.instances.c.id == sa.bindparam("b_id"))
            .values(rev=t.instances.c.rev + 1),
            fixed_shape=True,
        )

        def both(fail: bool) -> None:
            with eng.store.transaction() as conn:
                assert conn is eng.store._writer
                bump.execute(conn, {"b_id": first.id})  # on the driver
                conn.execute(rename.values(business_key="renamed"), {"b_id": second.id})
                if fail:
                    raise RuntimeError("after both statements")

        with pytest.raises(RuntimeError):
            both(fail=True)
        rows = [eng.store.instance(i.id) for i in (first, second)]
        assert [r["rev"] for r in rows if r] == [1, 1]
        assert [r["business_key"] for r in rows if r] == [None, None]
        both(fail=False)
        rows = [eng.store.instance(i.id) for i in (first, second)]
        assert [r["rev"] for r in rows if r] == [2, 1]
        assert [r["business_key"] for r in rows if r] == [None, "renamed"]
        writer = eng.store._writer
        assert writer is not None and not writer.in_transaction()
        assert not driver.in_transaction(writer)
    finally:
        eng.close()
