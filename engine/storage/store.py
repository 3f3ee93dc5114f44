"""The one storage interface: every database operation the engine performs is a named method.

SQLite (the embedded default, WAL mode) and PostgreSQL go through the same SQLAlchemy Core
statements. Writes of one engine call are gathered in an ``InstanceWrite`` and applied by
``apply`` in a single transaction; the instance row's ``rev`` column makes that write optimistic:
if another transaction moved the instance on meanwhile, nothing is written and
``ConcurrencyConflict`` is raised for the caller to re-run its command on fresh state
(``engine.storage.write``). Jobs and incidents (``store_jobs``) and external tasks
(``store_external``) have their operations in modules of their own; ``Store`` inherits them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.pool import StaticPool

from engine.core.errors import CommitUnknown, ConcurrencyConflict, NotCommitted, StoreError
from engine.storage import (
    checkpoint,
    driver,
    group_write,
    operations,
    reconnect,
    store_external,
    store_jobs,
    thread_readers,
    user_tasks,
)
from engine.storage import schema as t
from engine.storage import write as write_mod
from engine.storage.write import InstanceWrite

DEFAULT_URL = "sqlite:///spillway.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "sw_schema_version"
NOTIFY_CHANNEL = t.NOTIFY_CHANNEL


# Statements of the per-call hot path, built once: constructing a SQLAlchemy statement costs more
# than running it on SQLite. Bound parameters are prefixed ``b_`` to stay clear of column names.
_LATEST_DEFINITION = (
    sa.select(t.definitions)
    .where(t.definitions.c.key == sa.bindparam("b_key"))
    .order_by(t.definitions.c.version.desc())
    .limit(1)
)
#: The id of a key's newest version: the cheap check every start() makes, so a deployment on
#: another node is seen at once; the definition row itself is read once per id and cached.
_LATEST_DEFINITION_ID = driver.DriverStatement(
    sa.select(t.definitions.c.id)
    .where(t.definitions.c.key == sa.bindparam("b_key"))
    .order_by(t.definitions.c.version.desc())
    .limit(1)
)
_DEFINITION = sa.select(t.definitions).where(t.definitions.c.id == sa.bindparam("b_id"))
_INSTANCE = sa.select(t.instances).where(t.instances.c.id == sa.bindparam("b_id"))
# Taken before the read of a report's instance (``Store.locked_instance``).
_LOCK_INSTANCE = _INSTANCE.with_for_update()
#: PostgreSQL: threads with a read connection of their own for the newest-definition read of
#: each start() (engine.storage.thread_readers); other threads read through the pool.
PG_READERS = 8
#: A pooled connection unused for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 30.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling without a round trip on every checkout: a connection
    that sat idle in the pool (where a server restart or a firewall may have dropped it) is
    pinged first, and replaced if the ping fails. A busy pool never pings."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            # No transaction is open at checkout; a failed ping must not leave one behind.
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _autocommit(dbapi_conn: Any) -> None:
    # Each read is one statement, reading the newest committed state: no BEGIN, and no
    # transaction left open between reads.
    dbapi_conn.autocommit = True


def _is_memory_sqlite(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class _Held(threading.local):
    """The transaction a thread holds inside ``Store.locked_instance`` (None outside)."""

    conn: Connection | None = None
    instance_id: str | None = None
    after_commit: list[Callable[[], None]]

    def __init__(self) -> None:
        self.after_commit = []


def _end(conn: Connection, trans: sa.RootTransaction | None, *, commit: bool) -> None:
    """Commit or roll back a write transaction: SQLAlchemy's, or one begun on the driver
    (which a statement through SQLAlchemy may have joined: then SQLAlchemy ends it)."""
    if trans is not None:
        trans.commit() if commit else trans.rollback()
    elif conn.in_transaction():
        conn.commit() if commit else conn.rollback()
    else:
        (driver.driver_commit if commit else driver.driver_rollback)(conn)


class Store(
    store_jobs.JobQueries,
    store_external.ExternalTaskQueries,
    user_tasks.UserTaskQueries,
    operations.OperationQueries,
):
    """SQLAlchemy-backed storage shared by every engine node that points at the same URL."""

    def __init__(self, url: str | None = None) -> None:
        self.url = sa.make_url(url or DEFAULT_URL)
        self.dialect = self.url.get_backend_name()
        self._held = _Held()
        self._lock: threading.RLock | None = None
        # SQLite has one writer at a time: threads of this process queue here instead of in
        # SQLite's busy handler, which sleeps in growing steps (other processes still do).
        self._write_lock: threading.RLock | None = None
        #: A SQLite file's write connection, used under ``_write_lock`` (``_connection``).
        self._writer: Connection | None = None
        self._writer_pool: Any = None
        #: WAL checkpoints of a SQLite file, run off the hot path (engine.storage.checkpoint).
        self.checkpointer: checkpoint.Checkpointer | None = None
        #: A SQLite file's per-thread connections for hot one-statement reads.
        self._readers: thread_readers.ThreadReaders | None = None
        self.engine = self._create_engine()

    # -- connection handling ------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
            if _is_memory_sqlite(self.url):
                # One shared connection; the lock serialises threads on it.
                kwargs["poolclass"] = StaticPool
                self._lock = threading.RLock()
            else:
                self._write_lock = threading.RLock()
                if self.url.database and not self.url.query:
                    self.checkpointer = checkpoint.Checkpointer(self.url.database)
            engine = sa.create_engine(self.url, **kwargs)
            self._install_sqlite_hooks(engine)
            if self.checkpointer is not None:
                self._readers = thread_readers.ThreadReaders(engine)
            return engine
        if self.dialect == "postgresql":
            engine = sa.create_engine(self.url, pool_size=10, max_overflow=20)
            _ping_when_idle(engine)
            self._readers = thread_readers.ThreadReaders(
                engine, setup=_autocommit, limit=PG_READERS
            )
            return engine
        return sa.create_engine(self.url)

    def _install_sqlite_hooks(self, engine: Engine) -> None:
        # pysqlite's own transaction handling defers BEGIN and cannot take the write lock up
        # front; we issue BEGIN ourselves (IMMEDIATE for writes, so two writers queue on the
        # busy timeout instead of failing on lock upgrade).
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if self.checkpointer is not None:
                # The checkpointer thread keeps the WAL short; a commit checkpoints itself
                # only if that thread falls far behind.
                cur.execute(f"PRAGMA wal_autocheckpoint={checkpoint.FALLBACK_PAGES}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Every read method is one statement, atomic on its own in autocommit mode, so
            # reads skip BEGIN/COMMIT (two round trips on the hot path of every call).
            # The kept write connection's transactions begin on the driver (``transaction``):
            # a statement through SQLAlchemy inside one joins it.
            if conn.info.get("write") and not driver.in_transaction(conn):
                driver.driver_execute(conn, "BEGIN IMMEDIATE")

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Connection]:
        """One database transaction; commits on success, rolls back on any exception.

        A driver error before the commit is ``NotCommitted`` for a write (``StoreError`` for a
        read), a lost connection during the commit ``CommitUnknown`` (engine.storage.reconnect).
        Inside ``locked_instance`` the thread's held transaction is used instead (a write in a
        savepoint of it, so a write that fails leaves nothing behind)."""
        held = self._held.conn
        if held is not None:
            try:
                if write:
                    with held.begin_nested():
                        yield held
                else:
                    yield held
            except reconnect.CONNECTION_ERRORS as exc:
                raise reconnect.store_error(exc, write=True) from exc
            return
        lock = self._lock
        if lock is None and write:
            lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self._connection(write) as conn:
                if not write:
                    # Reads are single statements, atomic on their own: no BEGIN/ROLLBACK
                    # round trips (autocommit on PostgreSQL is a client-side switch; SQLite
                    # skips BEGIN in the hook below).
                    if self.dialect == "postgresql":
                        conn.execution_options(isolation_level="AUTOCOMMIT")
                    yield conn
                    return
                conn.info["write"] = True
                try:
                    # The kept SQLite write connection begins and commits on the driver:
                    # SQLAlchemy's transaction objects and events cost as much as an empty
                    # SQLite transaction (about 16 us of 24).
                    trans = None if conn is self._writer else conn.begin()
                    if trans is None:
                        driver.driver_execute(conn, "BEGIN IMMEDIATE")
                    try:
                        yield conn
                    except BaseException:
                        # On a dead connection the rollback may fail too.
                        with suppress(*reconnect.CONNECTION_ERRORS):
                            _end(conn, trans, commit=False)
                        raise
                    try:
                        _end(conn, trans, commit=True)
                    except reconnect.CONNECTION_ERRORS as exc:
                        # The connection is gone: release the dead transaction quietly.
                        with suppress(sa.exc.SQLAlchemyError):
                            _end(conn, trans, commit=False)
                        raise reconnect.commit_error(exc) from exc
                    if self.checkpointer is not None:
                        self.checkpointer.committed()
                finally:
                    conn.info["write"] = False
        except reconnect.CONNECTION_ERRORS as exc:
            raise reconnect.store_error(exc, write=write) from exc
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def _connection(self, write: bool) -> Iterator[Connection]:
        """A connection for one transaction. A SQLite file's writes (one at a time, under the
        write lock) reuse one connection kept open: checking one out of the pool and back in,
        with the pool's reset, cost more than the commit itself. It is replaced when it broke,
        was left mid-transaction, or came from a pool since disposed (``Engine.dispose()``
        replaces every connection, this one included)."""
        if not write or self._write_lock is None:
            with self.engine.connect() as conn:
                yield conn
            return
        writer = self._writer
        if writer is not None and (
            writer.closed or writer.invalidated or self._writer_pool is not self.engine.pool
        ):
            self._drop_writer()
            writer = None
        if writer is not None and (writer.in_transaction() or driver.in_transaction(writer)):
            # A write begun inside another of this thread's writes: as before, its own.
            with self.engine.connect() as conn:
                yield conn
            return
        if writer is None:
            self._writer_pool = self.engine.pool
            writer = self._writer = self.engine.connect()
        try:
            yield writer
        except BaseException:
            if writer.invalidated or writer.in_transaction() or driver.in_transaction(writer):
                self._drop_writer()  # the next write opens a fresh one
            raise

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with suppress(sa.exc.SQLAlchemyError):
                writer.close()

    def in_locked_transaction(self) -> bool:
        """Whether this thread is inside ``locked_instance`` (a read there cannot be re-run)."""
        return self._held.conn is not None

    @contextmanager
    def locked_instance(self, instance_id: str) -> Iterator[dict[str, Any] | None]:
        """Read an instance row under a lock held until the block ends, and run the whole
        block in that one transaction: reports on one instance then wait for each other
        instead of racing on its revision.

        On PostgreSQL the row is read ``SELECT ... FOR UPDATE``; on SQLite ``BEGIN IMMEDIATE``
        takes the database's write lock before the read. Every Store call this thread makes
        inside the block joins the transaction; ``on_commit`` callbacks run once it committed
        (and are dropped if it rolled back). Yields None when there is no such instance."""
        if self._held.conn is not None:
            raise RuntimeError("locked_instance does not nest")
        with self.transaction() as conn:
            query = _LOCK_INSTANCE if self.dialect == "postgresql" else _INSTANCE
            row = conn.execute(query, {"b_id": instance_id}).mappings().first()
            self._held.conn, self._held.instance_id = conn, instance_id
            try:
                yield dict(row) if row else None
            finally:
                self._held.conn, self._held.instance_id = None, None
                callbacks, self._held.after_commit = self._held.after_commit, []
        # Only reached when the transaction committed.
        for callback in callbacks:
            callback()

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once what this thread wrote is committed: now, or at the end of
        the ``locked_instance`` block it is in."""
        if self._held.conn is None:
            callback()
        else:
            self._held.after_commit.append(callback)

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision shipped with the package."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        with self.transaction(write=True) as conn:
            current = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
            if current == head:
                return
            cfg.attributes["connection"] = conn
            if current is None and not sa.inspect(conn).get_table_names():
                # An empty database: create the newest schema at once and record it as
                # migrated (replaying every revision costs a fresh test engine ~50 ms).
                # tests/test_schema.py proves both paths give the same schema.
                t.metadata.create_all(conn)
                command.stamp(cfg, "head")
                return
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        if self._readers is not None:
            self._readers.close()
        if self._write_lock is not None:
            with self._write_lock:
                self._drop_writer()
        self.engine.dispose()

    # -- deployments --------------------------------------------------------------------

    @reconnect.retry_read
    def deployment_by_digest(self, digest: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = (
                conn.execute(
                    sa.select(t.deployments).where(t.deployments.c.digest == digest).limit(1)
                )
                .mappings()
                .first()
            )
            return dict(row) if row else None

    @reconnect.retry_read
    def definitions_of_deployment(self, deployment_id: str) -> list[dict[str, Any]]:
        with self.transaction(write=False) as conn:
            return [
                dict(r)
                for r in conn.execute(
                    sa.select(t.definitions).where(t.definitions.c.deployment_id == deployment_id)
                ).mappings()
            ]

    @reconnect.retry_read
    def latest_definition(self, key: str) -> dict[str, Any] | None:
        """The newest version of one key: an index scan on (key, version), run on every start."""
        with self.transaction(write=False) as conn:
            row = conn.execute(_LATEST_DEFINITION, {"b_key": key}).mappings().first()
            return dict(row) if row else None

    @reconnect.retry_read
    def latest_definition_id(self, key: str) -> str | None:
        """The id of the newest version of one key (the (key, version) index, its first row)."""
        readers = self._readers
        if readers is not None and self._held.conn is None:
            try:
                reader = readers.connection()
                if reader is not None:
                    sql, params = _LATEST_DEFINITION_ID.driver_sql(
                        self.engine.dialect, {"b_key": key}
                    )
                    found = thread_readers.scalar(reader, sql, params)
                    return None if found is None else str(found)
            except (
                sqlite3.Error,
                sa.exc.DBAPIError,
                self.engine.dialect.loaded_dbapi.Error,
            ) as exc:
                readers.discard()  # retry_read runs the read again, on a new connection
                raise StoreError(f"database error: {exc}", disconnected=True) from exc
        with self.transaction(write=False) as conn:
            found = _LATEST_DEFINITION_ID.scalar(conn, {"b_key": key})
            return None if found is None else str(found)

    @reconnect.retry_read
    def latest_definitions(self, keys: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """The newest version of each of ``keys`` (of every key when None)."""
        if keys is not None and not keys:
            return {}
        newest_query = sa.select(
            t.definitions.c.key, sa.func.max(t.definitions.c.version).label("v")
        ).group_by(t.definitions.c.key)
        if keys is not None:
            newest_query = newest_query.where(t.definitions.c.key.in_(list(keys)))
        newest = newest_query.subquery()
        with self.transaction(write=False) as conn:
            rows = conn.execute(
                sa.select(t.definitions).join(
                    newest,
                    sa.and_(
                        t.definitions.c.key == newest.c.key,
                        t.definitions.c.version == newest.c.v,
                    ),
                )
            ).mappings()
            return {r["key"]: dict(r) for r in rows}

    @reconnect.retry_read
    def all_definitions(self) -> list[dict[str, Any]]:
        """Every definition row (each version), oldest first."""
        d = t.definitions
        with self.transaction(write=False) as conn:
            query = sa.select(d).order_by(d.c.created_at, d.c.key, d.c.version)
            return [dict(r) for r in conn.execute(query).mappings()]

    @reconnect.retry_read
    def definition(self, definition_id: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = conn.execute(_DEFINITION, {"b_id": definition_id}).mappings().first()
            return dict(row) if row else None

    @reconnect.retry_read
    def resources(self, deployment_id: str) -> list[dict[str, Any]]:
        with self.transaction(write=False) as conn:
            return [
                dict(r)
                for r in conn.execute(
                    sa.select(t.resources)
                    .where(t.resources.c.deployment_id == deployment_id)
                    .order_by(t.resources.c.name)
                ).mappings()
            ]

    def message_start_definitions(self, message: str) -> list[dict[str, Any]]:
        """Latest definitions whose message start events listen for ``message``."""
        latest = self.latest_definitions(None).values()
        return [d for d in latest if message in (d["message_starts"] or [])]

    def insert_deployment(
        self,
        deployment: dict[str, Any],
        resources: list[dict[str, Any]],
        definitions: list[dict[str, Any]],
        start_jobs: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Insert a deployment; a new version's timer start jobs replace the older versions'
        (as in Camunda, only the latest version of a process starts by timer)."""
        try:
            with self.transaction() as conn:
                conn.execute(t.deployments.insert(), [deployment])
                if resources:
                    conn.execute(t.resources.insert(), resources)
                if definitions:
                    conn.execute(t.definitions.insert(), definitions)
                    older = sa.select(t.definitions.c.id).where(
                        t.definitions.c.key.in_([d["key"] for d in definitions]),
                        t.definitions.c.id.not_in([d["id"] for d in definitions]),
                    )
                    conn.execute(
                        t.jobs.delete().where(
                            t.jobs.c.kind == "timer-start", t.jobs.c.definition_id.in_(older)
                        )
                    )
                if start_jobs:
                    conn.execute(t.jobs.insert(), list(start_jobs))
                    if self.dialect == "postgresql":
                        conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")
        except IntegrityError as exc:
            # Another node deployed the same key version at the same moment.
            raise ConcurrencyConflict("a concurrent deployment took the same version") from exc

    # -- instances ----------------------------------------------------------------------

    @reconnect.retry_read
    def instance(self, instance_id: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = conn.execute(_INSTANCE, {"b_id": instance_id}).mappings().first()
            return dict(row) if row else None

    @reconnect.retry_read
    def instances(
        self,
        process_key: str | None = None,
        state: str | None = None,
        business_key: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        cols = [c for c in t.instances.c if c.name != "data"]
        query = sa.select(*cols).order_by(t.instances.c.created_at, t.instances.c.id)
        if process_key is not None:
            query = query.where(t.instances.c.process_key == process_key)
        if state is not None:
            query = query.where(t.instances.c.state == state)
        if business_key is not None:
            query = query.where(t.instances.c.business_key == business_key)
        if ids is not None:
            query = query.where(t.instances.c.id.in_(list(ids)))
        if limit is not None:
            query = query.limit(limit)
        with self.transaction(write=False) as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    @reconnect.retry_read
    def history(self, instance_id: str) -> list[dict[str, Any]]:
        with self.transaction(write=False) as conn:
            return [
                dict(r)
                for r in conn.execute(
                    sa.select(t.history)
                    .where(t.history.c.instance_id == instance_id)
                    .order_by(t.history.c.seq)
                ).mappings()
            ]

    @reconnect.retry_read
    def instance_states(self, instance_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored state, definition and variables of several instances (for task variables)."""
        i = t.instances
        with self.transaction(write=False) as conn:
            rows = conn.execute(
                sa.select(i.c.id, i.c.definition_id, i.c.data, i.c.variables).where(
                    i.c.id.in_(list(instance_ids))
                )
            ).mappings()
            return {r["id"]: dict(r) for r in rows}

    @reconnect.retry_read
    def history_row(self, row_id: str) -> dict[str, Any] | None:
        with self.transaction(write=False) as conn:
            row = conn.execute(sa.select(t.history).where(t.history.c.id == row_id)).mappings()
            found = row.first()
            return dict(found) if found else None

    @reconnect.retry_read
    def subscribers(self, kind: str, name: str) -> list[dict[str, Any]]:
        with self.transaction(write=False) as conn:
            return [
                dict(r)
                for r in conn.execute(
                    sa.select(t.subscriptions).where(
                        t.subscriptions.c.kind == kind, t.subscriptions.c.name == name
                    )
                ).mappings()
            ]

    def apply_all(self, writes: Sequence[InstanceWrite]) -> None:
        """Apply several instances' writes in one transaction (a migration): all or none."""
        try:
            with self.transaction() as conn:
                for write in writes:
                    write_mod.apply(conn, write, self.dialect, self._check_external_held)
        except IntegrityError as exc:
            raise StoreError(f"write of {len(writes)} instances refused: {exc.orig}") from exc

    def apply_group(self, writes: Sequence[InstanceWrite]) -> list[BaseException | None]:
        """Group commit: apply the writes of several instances in one transaction, each
        isolated from the others. A write that loses a race (``ConcurrencyConflict``) or that
        the database refuses (``StoreError``) is rolled back alone and its error is returned in
        its place; the others commit together. Returns one outcome per write, in order (None:
        committed). A failure of the transaction itself (``NotCommitted``, ``CommitUnknown``)
        is raised: then no write of the group committed (or, unknown, all did).

        Optimistic: the writes are applied together in one transaction, one statement per kind
        of row (``storage.group_write``); only if a check fails is that transaction rolled back
        and the group applied again write by write, each in a savepoint, so the common case
        pays neither savepoints nor a statement per row. Writes are applied in
        instance-id order, so two groups on PostgreSQL take their rows' locks in one order."""
        if self._held.conn is not None:
            raise RuntimeError("apply_group inside locked_instance")
        order = sorted(range(len(writes)), key=lambda i: str(writes[i].instance["id"]))
        if len(writes) > 1:
            try:
                with self.transaction() as conn:
                    group_write.apply_many(
                        conn, [writes[i] for i in order], self.dialect, self._check_external_held
                    )
                return [None] * len(writes)
            except (ConcurrencyConflict, IntegrityError):
                pass  # rolled back whole: nothing of the group is written; isolate each below
        outcomes: list[BaseException | None] = [None] * len(writes)
        with self.transaction() as conn:
            for i in order:
                write = writes[i]
                try:
                    with conn.begin_nested():
                        write_mod.apply(conn, write, self.dialect, self._check_external_held)
                except ConcurrencyConflict as exc:
                    outcomes[i] = exc
                except IntegrityError as exc:
                    outcomes[i] = StoreError(
                        f"instance {write.instance['id']}: write refused by the database: "
                        f"{exc.orig}"
                    )
                except reconnect.CONNECTION_ERRORS as exc:
                    error = reconnect.store_error(exc, write=True)
                    if not isinstance(error, ConcurrencyConflict):
                        raise  # the transaction is lost: no write of the group committed
                    outcomes[i] = error  # a deadlock victim: only its savepoint rolled back
        return outcomes

    def apply(self, write: InstanceWrite) -> None:
        """Apply one engine call's changes in a single transaction (see module docstring)."""
        try:
            with self.transaction() as conn:
                write_mod.apply(
                    conn,
                    write,
                    self.dialect,
                    self._check_external_held,
                    row_locked=self._held.instance_id == write.instance["id"],
                )
        except IntegrityError as exc:
            # Races are caught by the rev and lock checks above; this is a broken write.
            raise StoreError(
                f"instance {write.instance['id']}: write refused by the database: {exc.orig}"
            ) from exc
        except (NotCommitted, CommitUnknown) as exc:
            # Named, so a caller can look the instance up (a start() by its business key).
            inst = write.instance
            key = inst.get("business_key")
            what = f"instance {inst['id']}" + (f" (business key '{key}')" if key else "")
            if write.expected_rev is None:
                what = f"start of {what}"
            raise type(exc)(f"{what}: {exc}", disconnected=exc.disconnected) from exc

    @reconnect.retry_read
    def external_tasks_of(self, instance_id: str) -> list[dict[str, Any]]:
        with self.transaction(write=False) as conn:
            return [
                dict(r)
                for r in conn.execute(
                    sa.select(t.external_tasks).where(t.external_tasks.c.instance_id == instance_id)
                ).mappings()
            ]
