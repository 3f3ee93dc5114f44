"""After a database restart (issue 19, item 8): reads retry on a fresh connection, a write that
certainly did not commit says so (NotCommitted), and one whose commit outcome is unknown says
that (CommitUnknown). The restart is simulated by terminating the engine's server connections
(``pg_terminate_backend``), not by restarting the shared server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from engine import CommitUnknown, NotCommitted, ProcessEngine, StoreError
from tests.bpmnbuild import process, service, user
from tests.conftest import PG_ADMIN_URL, pg_url, reset_pg
from tests.test_core import table_counts

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg() -> Iterator[ProcessEngine]:
    url = pg_url()
    reset_pg(url)
    eng = ProcessEngine(url)
    eng.deploy(process("p", user("U")))
    yield eng
    eng.close()


@pytest.fixture
def admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _terminate(admin: sa.Engine, pids: list[int]) -> None:
    with admin.connect() as conn:
        for pid in pids:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})


def _pooled_pids(eng: ProcessEngine, count: int = 3) -> list[int]:
    """Fill the pool with ``count`` connections and return their server pids."""
    conns = [eng.store.engine.connect() for _ in range(count)]
    pids = [int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) for c in conns]
    for c in conns:
        c.rollback()
        c.close()
    return pids


def test_reads_retry_after_the_server_dropped_every_connection(
    pg: ProcessEngine, admin: sa.Engine
) -> None:
    inst = pg.start("p", business_key="A-1")
    _terminate(admin, _pooled_pids(pg))
    # Every pooled connection is dead: the first read finds one, and is re-run.
    assert [i.id for i in pg.instances()] == [inst.id]
    _terminate(admin, _pooled_pids(pg))
    assert pg.get_instance(inst.id).waiting_at == ["U"]
    _terminate(admin, _pooled_pids(pg))
    assert pg.history(inst.id)


def _engine_backends(admin: sa.Engine, eng: ProcessEngine) -> list[int]:
    """Server pids of every connection the engine holds open (its pool)."""
    with admin.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": eng.store.url.database},
        )
        return [int(r[0]) for r in rows]


def _kill_own_backend_at_commit(eng: ProcessEngine, admin: sa.Engine) -> list[int]:
    """Terminate the engine connection's server process as it is about to commit (once)."""
    fired: list[int] = []

    def kill(conn: Any) -> None:
        if fired:
            return
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        fired.append(pid)
        _terminate(admin, [pid])

    sa.event.listen(eng.store.engine, "commit", kill)
    return fired


def test_a_write_that_never_reached_its_commit_says_it_did_not_commit(
    pg: ProcessEngine, admin: sa.Engine
) -> None:
    fired: list[int] = []

    def server_restarts_meanwhile(ctx: Any) -> None:
        # The server drops every connection of the engine while the handler runs, so the
        # write that follows finds its pooled connection dead before anything is committed.
        if not fired:
            fired.extend(_engine_backends(admin, pg))
            _terminate(admin, fired)

    pg.register_handler("restart", server_restarts_meanwhile)
    pg.deploy(process("q", service("Work", "restart"), user("U")))
    before = table_counts(pg)
    with pytest.raises(NotCommitted) as err:
        pg.start("q", business_key="B-7")
    assert fired
    message = str(err.value)
    assert "not committed" in message and "B-7" in message and "can be repeated" in message
    assert err.value.disconnected
    assert table_counts(pg) == before  # nothing written: repeating it is safe
    assert pg.start("q", business_key="B-7").waiting_at == ["U"]


def test_a_write_whose_commit_was_lost_says_its_outcome_is_unknown(
    pg: ProcessEngine, admin: sa.Engine
) -> None:
    fired = _kill_own_backend_at_commit(pg, admin)
    with pytest.raises(CommitUnknown) as err:
        pg.start("p", business_key="C-3")
    assert fired
    message = str(err.value)
    assert "may or may not have been applied" in message and "C-3" in message
    assert isinstance(err.value, StoreError)
    # What the caller does next: look it up by business key (here the server never got the
    # COMMIT, so there is none) and start it only then.
    assert pg.instances(business_key="C-3") == []
    assert pg.start("p", business_key="C-3").business_key == "C-3"
