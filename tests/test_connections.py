"""Pooled PostgreSQL connections the server dropped are replaced, not reported as errors."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine import ProcessEngine
from engine.storage import store
from tests.bpmnbuild import process, user
from tests.conftest import PG_ADMIN_URL, pg_url, reset_pg

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg() -> str:
    url = pg_url()
    reset_pg(url)
    return url


def _terminate_other_backends(url: str) -> int:
    """What a server restart or an idle-connection firewall does to a pool."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": sa.make_url(url).database},
        ).scalar_one()
    admin.dispose()
    return int(killed)


def test_an_idle_connection_dropped_by_the_server_is_replaced(
    pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = ProcessEngine(pg)
    eng.deploy(process("p", user("Review")))
    inst = eng.start("p")
    assert _terminate_other_backends(pg) >= 1
    monkeypatch.setattr(store, "IDLE_PING_SECONDS", 0.0)  # every pooled connection is "idle"
    # The next calls get a live connection instead of the dead one's error.
    assert eng.get_instance(inst.id).waiting_at == ["Review"]
    assert eng.complete_task(inst.id, "Review").state == "completed"
    eng.close()
