"""Hot-path statements run on the driver's cursor (``engine.storage.driver``) store exactly
what SQLAlchemy would, and fail as SQLAlchemy's statements fail, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from engine.storage import schema as t
from engine.storage.driver import DriverStatement, pipeline
from engine.storage.store import Store

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def instance_row(instance_id: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": instance_id,
        "definition_id": "p:1:abc",
        "process_key": "p",
        "version": 1,
        "business_key": None,
        "state": "active",
        "waiting_at": ["U"],
        "variables": {"amount": 30, "tags": ["a", None], "nested": {"ok": True}, "none": None},
        "open_activities": {"open": {}, "seq": 2},
        "data": '{"tasks":{}}',
        "format": 1,
        "rev": 1,
        "created_at": NOW,
        "updated_at": NOW,
        "ended_at": None,
    }
    row.update(extra)
    return row


def stored(store: Store, table: sa.Table, key: str) -> dict[str, Any]:
    """The row as the database holds it, every column cast to text (no type conversion)."""
    cols = [sa.cast(c, sa.Text).label(c.name) for c in table.c if c.name != "id"]
    with store.transaction(write=False) as conn:
        row = conn.execute(sa.select(*cols).where(table.c.id == key)).mappings().one()
        return dict(row)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    yield s
    s.dispose()


def test_an_insert_stores_the_bytes_sqlalchemy_would(store: Store) -> None:
    insert = DriverStatement(t.instances.insert())
    with store.transaction() as conn:
        insert.execute(conn, instance_row("by-driver"))  # "suspended" left to its default
        conn.execute(t.instances.insert(), [instance_row("by-sqlalchemy")])
    assert stored(store, t.instances, "by-driver") == stored(store, t.instances, "by-sqlalchemy")
    # And reads back through SQLAlchemy as the values written.
    back = store.instance("by-driver")
    assert back is not None
    assert back["created_at"] == NOW and back["ended_at"] is None
    assert back["variables"] == instance_row("x")["variables"]
    assert back["suspended"] is False


def test_an_update_applies_only_at_its_revision(store: Store) -> None:
    update = DriverStatement(
        t.instances.update().where(
            t.instances.c.id == sa.bindparam("b_id"), t.instances.c.rev == sa.bindparam("b_rev")
        )
    )
    with store.transaction() as conn:
        conn.execute(t.instances.insert(), [instance_row("i")])
    with store.transaction() as conn:
        changed = {"state": "completed", "ended_at": NOW, "rev": 2}
        assert update.execute(conn, {**changed, "b_id": "i", "b_rev": 1}) == 1
        assert update.execute(conn, {**changed, "b_id": "i", "b_rev": 1}) == 0  # moved on
    row = store.instance("i")
    assert row is not None and (row["state"], row["rev"], row["ended_at"]) == ("completed", 2, NOW)


def test_a_batch_of_rows_leaving_out_different_columns(store: Store) -> None:
    insert = DriverStatement(t.jobs.insert())

    def job(job_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": job_id,
            "instance_id": None,
            "activity_id": "T",
            "task_id": None,
            "kind": "timer-start",
            "due_at": NOW,
            "retries_left": 3,
            "attempts": 0,
            "payload": {},
            "rev": 1,
            "created_at": NOW,
            **extra,
        }

    with store.transaction() as conn:
        assert insert.execute(conn, [job("a"), job("b", definition_id="p:1:x"), job("c")]) == 3
    assert {j["id"]: j["definition_id"] for j in store.jobs()} == {
        "a": None,
        "b": "p:1:x",
        "c": None,
    }


def test_a_refused_row_fails_as_sqlalchemy_does_and_writes_nothing(store: Store) -> None:
    insert = DriverStatement(t.instances.insert())
    with store.transaction() as conn:
        insert.execute(conn, instance_row("dup"))

    def both() -> None:
        with store.transaction() as conn:
            insert.execute(conn, instance_row("other"))
            insert.execute(conn, instance_row("dup"))

    with pytest.raises(sa.exc.IntegrityError):
        both()
    assert store.instance("other") is None  # the transaction rolled back


def test_a_select_with_a_limit_reads_one_value(store: Store) -> None:
    latest = DriverStatement(
        sa.select(t.definitions.c.id)
        .where(t.definitions.c.key == sa.bindparam("b_key"))
        .order_by(t.definitions.c.version.desc())
        .limit(1)
    )
    rows = [
        {
            "id": f"p:{v}:x",
            "key": "p",
            "version": v,
            "deployment_id": "x",
            "resource": "p.bpmn",
            "digest": "d",
            "message_starts": [],
            "created_at": NOW,
        }
        for v in (1, 3, 2)
    ]
    with store.transaction() as conn:
        conn.execute(t.definitions.insert(), rows)
    with store.transaction(write=False) as conn:
        assert latest.scalar(conn, {"b_key": "p"}) == "p:3:x"
        assert latest.scalar(conn, {"b_key": "q"}) is None


def test_a_refused_row_in_a_pipeline_fails_as_sqlalchemy_does(store: Store) -> None:
    # On PostgreSQL the statements of a pipeline are answered together at its end.
    insert = DriverStatement(t.instances.insert())
    with store.transaction() as conn:
        insert.execute(conn, instance_row("dup"))

    def batch() -> None:
        with store.transaction() as conn, pipeline(conn):
            insert.execute(conn, instance_row("first"))
            insert.execute(conn, instance_row("dup"))
            insert.execute(conn, instance_row("after"))

    with pytest.raises(sa.exc.IntegrityError):
        batch()
    assert store.instance("first") is None and store.instance("after") is None
    with store.transaction() as conn, pipeline(conn):
        insert.execute(conn, instance_row("first"))
        insert.execute(conn, instance_row("after"))
    assert store.instance("first") is not None and store.instance("after") is not None


def test_rows_read_by_an_in_list_are_those_sqlalchemy_reads(store: Store) -> None:
    insert = DriverStatement(t.instances.insert())
    with store.transaction() as conn:
        insert.execute(conn, [instance_row(f"i{n}", rev=n) for n in range(5)])
    by_ids = sa.select(t.instances).where(
        t.instances.c.id.in_(sa.bindparam("b_ids", expanding=True))
    )
    read = DriverStatement(by_ids)
    with store.transaction(write=False) as conn:
        for ids in (["i1"], ["i3", "i0", "nope"], [f"i{n}" for n in range(5)], ["i2"]):
            expected = [dict(r) for r in conn.execute(by_ids, {"b_ids": ids}).mappings()]
            found = read.rows(conn, {"b_ids": ids})
            assert sorted(found, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])
    assert found[0]["variables"]["nested"] == {"ok": True}  # JSON and datetimes converted
    assert found[0]["created_at"] == NOW


def test_an_in_list_longer_than_any_kept_rendering_still_runs(store: Store) -> None:
    insert = DriverStatement(t.instances.insert())
    ids = [f"i{n}" for n in range(300)]
    with store.transaction() as conn:
        insert.execute(conn, [instance_row(i) for i in ids])
    delete = DriverStatement(
        t.instances.delete().where(
            t.instances.c.id.in_(sa.bindparam("b_ids", expanding=True)),
            t.instances.c.rev == sa.bindparam("b_rev"),
        )
    )
    with store.transaction() as conn:
        assert delete.execute(conn, {"b_ids": ids[:250], "b_rev": 2}) == 0
        assert delete.execute(conn, {"b_ids": ids[:250], "b_rev": 1}) == 250
    assert store.instance("i249") is None and store.instance("i250") is not None


def test_an_update_returning_reads_its_rows(store: Store) -> None:
    insert = DriverStatement(t.instances.insert())
    with store.transaction() as conn:
        insert.execute(conn, [instance_row("a"), instance_row("b")])
    bump = DriverStatement(
        t.instances.update()
        .where(t.instances.c.id.in_(sa.bindparam("b_ids", expanding=True)))
        .values(state=sa.bindparam("b_state"), rev=t.instances.c.rev + 1)
        .returning(t.instances.c.id, t.instances.c.rev, t.instances.c.updated_at),
        fixed_shape=True,
    )
    with store.transaction() as conn:
        found = bump.rows(conn, {"b_ids": ["a", "b", "c"], "b_state": "completed"})
    assert sorted(found, key=lambda r: r["id"]) == [
        {"id": "a", "rev": 2, "updated_at": NOW},
        {"id": "b", "rev": 2, "updated_at": NOW},
    ]
    assert store.instance("a")["state"] == "completed"  # type: ignore[index]
