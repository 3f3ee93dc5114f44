"""Hot-path statements run on the driver's cursor, past SQLAlchemy's per-statement layer.

Every engine call runs a handful of statements: the lookup of the latest definition, the
instance row's insert or update, its history rows, the job it ran. Through
``Connection.execute`` each costs about 0.05 ms of SQLAlchemy's execution layer (execution
context, events, result wrapping), several times what SQLite itself takes for it. A
``DriverStatement`` keeps the SQLAlchemy Core statement as the one definition of the SQL:
it is compiled once per dialect and set of columns by SQLAlchemy (quoting, casts,
placeholders), its parameters are converted by SQLAlchemy's own bind processors of each
column's type (UTC datetimes, JSON, booleans: the stored bytes are those SQLAlchemy would
write), and it is executed on the connection's DBAPI cursor inside the caller's SQLAlchemy
transaction.

A driver error is raised as SQLAlchemy's wrapped ``DBAPIError`` (``OperationalError``,
``IntegrityError``...), so callers handle both paths alike; a lost connection invalidates
the connection and the pool, as SQLAlchemy does, so the next checkout opens a fresh one.

An expanding (``IN``) parameter is rendered by SQLAlchemy once per number of values
(``construct_expanded_state``) and that SQL kept, for lists of up to ``MAX_CACHED_VALUES``
values; statements with Python-callable column defaults stay on ``Connection.execute``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ClauseElement

from engine.storage.schema import UTCDateTime

Processor = Callable[[Any], Any] | None
_T = TypeVar("_T")
#: Up to this many values of expanding parameters (together), a rendering is kept per count:
#: a group's or an acquisition's ids; a longer list is rendered for its call alone.
MAX_CACHED_VALUES = 256


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: Bind names in placeholder order (qmark/format dialects), or None for named placeholders.
    order: tuple[str, ...] | None
    names: tuple[str, ...]
    #: Values of binds the caller does not pass (a LIMIT, a column's scalar default).
    fixed: dict[str, Any]
    #: (bind name, processor) in the order the driver takes them.
    plan: tuple[tuple[str, Processor], ...]
    #: Expanding binds: their names, each list's values bound as ``name_1 ... name_n``.
    expanding: tuple[str, ...] = ()


class DriverStatement:
    """One SQLAlchemy Core statement, executed on the DBAPI cursor (see module docstring).

    The columns an INSERT or UPDATE writes are the keys of its parameters (one compilation per
    set of keys, as SQLAlchemy caches them); a column an INSERT leaves out gets its default."""

    def __init__(self, statement: ClauseElement, *, fixed_shape: bool = False) -> None:
        """``fixed_shape``: an INSERT or UPDATE whose written columns the statement names
        itself (``.values(...)``), its parameters only bound values."""
        self.statement = statement
        # The columns an INSERT or UPDATE writes are its parameters' keys; other statements
        # (and an UPDATE whose values the statement sets itself) have one fixed shape.
        self._shaped_by_keys = not fixed_shape and isinstance(statement, sa.Insert | sa.Update)
        self._table = getattr(statement, "table", None)
        self._by_shape: dict[tuple[str, tuple[str, ...] | None, tuple[int, ...]], _Compiled] = {}
        self._lock = threading.Lock()
        self._result_plans: dict[str, tuple[tuple[str, ...], tuple[Processor, ...]]] = {}
        #: The expanding parameters' names, in the order their counts are given.
        generic: Any = statement.compile()
        self.expanding: tuple[str, ...] = tuple(
            sorted(b.key for b in generic.binds.values() if b.expanding)
        )

    def _compiled(
        self,
        dialect: sa.Dialect,
        keys: tuple[str, ...] | None,
        counts: tuple[int, ...] = (),
    ) -> _Compiled:
        """The statement compiled for ``dialect``, the columns ``keys`` and ``counts`` values
        of each expanding parameter (in the order of ``self.expanding``)."""
        shape = (f"{dialect.name}+{dialect.driver}", keys, counts)
        found = self._by_shape.get(shape)
        if found is not None:
            return found
        with self._lock:
            found = self._compile(dialect, keys, counts)
            if sum(counts) <= MAX_CACHED_VALUES:
                self._by_shape[shape] = found
        return found

    def _compile(
        self, dialect: sa.Dialect, keys: tuple[str, ...] | None, counts: tuple[int, ...]
    ) -> _Compiled:
        compiled: Any = self.statement.compile(
            dialect=dialect, column_keys=list(keys) if keys is not None else None
        )
        names: list[str] = []
        processors: dict[str, Processor] = {}
        fixed: dict[str, Any] = {}
        expanding: list[str] = []
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None and isinstance(bind.type, UTCDateTime):
                process = _utc_datetimes(dialect, process)
            processors[name] = process
            if bind.expanding:
                expanding.append(name)
                continue
            names.append(name)
            if keys is not None and name in keys:
                continue
            table = self._table
            column = table.c.get(name) if table is not None and keys is not None else None
            default = getattr(column, "default", None)
            if default is not None:
                # A column the row leaves out: its default, as SQLAlchemy would fill in.
                if not default.is_scalar:
                    raise ValueError(f"{self.statement}: column {name} has a callable default")
                fixed[name] = default.arg
            elif not bind.required and bind.callable is None:
                fixed[name] = bind.value  # a literal of the statement (a LIMIT)
        if sorted(expanding) != list(self.expanding) or len(counts) != len(expanding):
            raise ValueError(f"{self.statement}: expanding parameters {expanding}")
        count_of = dict(zip(self.expanding, counts, strict=True))
        sql = str(compiled)
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        if expanding:
            if 0 in counts:
                raise ValueError(f"{self.statement}: an expanding parameter without values")
            # SQLAlchemy renders the lists (placeholders, casts) for these counts of values.
            sample = dict.fromkeys(names)
            sample.update({n: [None] * count_of[n] for n in expanding})
            state = compiled.construct_expanded_state(sample)
            sql = state.statement
            order = tuple(state.positiontup) if order is not None else None
            for name in expanding:
                for i in range(1, count_of[name] + 1):
                    processors[f"{name}_{i}"] = processors[name]
                    names.append(f"{name}_{i}")
            missing = set(names) - set(state.parameters)
            if missing:
                raise ValueError(f"{self.statement}: unexpected rendering of {sorted(missing)}")
        plan = tuple((name, processors[name]) for name in (order or names))
        return _Compiled(sql, order, tuple(names), fixed, plan, tuple(expanding))

    def execute(
        self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ()
    ) -> int:
        """Run the statement (``executemany`` for a sequence of parameter sets, one per set
        of keys); the rows it touched."""
        if isinstance(params, Mapping):
            compiled, bound = self._bound(conn.dialect, params)
            single: int = _on_cursor(
                conn, compiled.sql, lambda cursor: cursor.execute(compiled.sql, bound).rowcount
            )
            return single
        if self.expanding:
            raise ValueError(f"{self.statement}: expanding parameters in an executemany")
        # One executemany per set of keys (rows of one batch may leave out different columns).
        groups: dict[tuple[str, ...] | None, list[Mapping[str, Any]]] = {}
        for row in params:
            groups.setdefault(self._keys(row), []).append(row)
        count = 0
        for keys, rows in groups.items():
            compiled = self._compiled(conn.dialect, keys)
            many = [_bind(compiled, row) for row in rows]

            def run_many(cursor: Any, sql: str = compiled.sql, many: list[Any] = many) -> int:
                cursor.executemany(sql, many)
                touched: int = cursor.rowcount
                return touched

            count += _on_cursor(conn, compiled.sql, run_many)
        return count

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row (None when there is none)."""
        compiled, bound = self._bound(conn.dialect, params)
        row = _on_cursor(
            conn, compiled.sql, lambda cursor: cursor.execute(compiled.sql, bound).fetchone()
        )
        return None if row is None else row[0]

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row the statement returns (a SELECT, or RETURNING), keyed by column, each
        value converted by its column type's result processor as SQLAlchemy converts it."""
        compiled, bound = self._bound(conn.dialect, params)
        keys, processors = self._results(conn.dialect)

        def fetch(cursor: Any) -> list[Any]:
            found: list[Any] = cursor.execute(compiled.sql, bound).fetchall()
            return found

        found = _on_cursor(conn, compiled.sql, fetch)
        converted = [(i, p) for i, p in enumerate(processors) if p is not None]
        out = []
        for raw in found:
            row = dict(zip(keys, raw, strict=True))
            for i, process in converted:
                row[keys[i]] = process(raw[i])
            out.append(row)
        return out

    def driver_sql(self, dialect: sa.Dialect, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The statement's SQL and ``params`` bound for ``dialect``, to run on a driver
        connection of one's own (``engine.storage.thread_readers``)."""
        compiled, bound = self._bound(dialect, params)
        return compiled.sql, bound

    def _bound(self, dialect: sa.Dialect, params: Mapping[str, Any]) -> tuple[_Compiled, Any]:
        if not self.expanding:
            compiled = self._compiled(dialect, self._keys(params))
            return compiled, _bind(compiled, params)
        lists = [list(params[name]) for name in self.expanding]
        compiled = self._compiled(dialect, self._keys(params), tuple(len(v) for v in lists))
        flat = dict(params)
        for name, values in zip(self.expanding, lists, strict=True):
            for i, value in enumerate(values, 1):
                flat[f"{name}_{i}"] = value
        return compiled, _bind(compiled, flat)

    def _results(self, dialect: sa.Dialect) -> tuple[tuple[str, ...], tuple[Processor, ...]]:
        key = f"{dialect.name}+{dialect.driver}"
        found = self._result_plans.get(key)
        if found is None:
            columns = list(self.statement.exported_columns)  # type: ignore[attr-defined]
            found = (
                tuple(c.key for c in columns),
                tuple(
                    c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
                ),
            )
            self._result_plans[key] = found
        return found

    def send(
        self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> Any:
        """Inside ``pipeline`` on PostgreSQL: queue the statement (``executemany`` for a
        sequence of parameter sets of one set of keys) on a cursor of its own, returned open:
        its ``rowcount`` and rows are there once the pipeline was synced. A driver error is
        raised by the sync (``pipeline`` wraps it as SQLAlchemy's)."""
        first = params if isinstance(params, Mapping) else params[0]
        compiled = self._compiled(conn.dialect, self._keys(first))
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        cursor = dbapi_conn.cursor()
        if isinstance(params, Mapping):
            cursor.execute(compiled.sql, _bind(compiled, params))
        else:
            cursor.executemany(compiled.sql, [_bind(compiled, row) for row in params])
        return cursor

    def _keys(self, row: Mapping[str, Any]) -> tuple[str, ...] | None:
        return tuple(row) if self._shaped_by_keys else None


#: One converter of UTC datetimes per dialect, shared by every such column (they convert alike).
_UTC_DATETIMES: dict[str, Callable[[Any], Any]] = {}


def _utc_datetimes(dialect: sa.Dialect, process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    key = f"{dialect.name}+{dialect.driver}"
    found = _UTC_DATETIMES.get(key)
    if found is None:
        found = _UTC_DATETIMES.setdefault(key, _last_value_memo(process))
    return found


def _last_value_memo(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` remembering its last input and result: one call's rows carry the same
    datetime object in many columns (the call's ``now``), converted once. Only for immutable
    values; the pair is swapped atomically, so threads may share it."""
    last: list[tuple[Any, Any]] = [(object(), None)]

    def memoized(value: Any) -> Any:
        seen_value, seen_result = last[0]
        if seen_value is value:
            return seen_result
        result = process(value)
        last[0] = (value, result)
        return result

    return memoized


def _bind(compiled: _Compiled, row: Mapping[str, Any]) -> Any:
    fixed = compiled.fixed
    values = []
    for name, process in compiled.plan:
        value = row.get(name, _MISSING)
        if value is _MISSING:
            value = fixed[name]
        values.append(value if process is None else process(value))
    if compiled.order is None:
        return dict(zip(compiled.names, values, strict=True))
    return values


_MISSING = object()


@contextmanager
def pipeline(conn: Connection) -> Iterator[Any]:
    """On psycopg, the statements run inside are sent together and answered together at the
    end (one round trip instead of one each, BEGIN included); elsewhere nothing changes. Only
    for statements whose results and row counts are not read inside, or read from the
    cursors of ``DriverStatement.send`` once the yielded pipeline was synced (its ``sync()``;
    None off psycopg): an error of any of them is raised by the sync or when the block ends."""
    dbapi_conn = conn.connection.dbapi_connection
    enter = getattr(dbapi_conn, "pipeline", None)
    if conn.dialect.name != "postgresql" or enter is None:
        yield None
        return
    dialect = conn.dialect
    dbapi_error: type[Any] = dialect.loaded_dbapi.Error
    try:
        with enter() as queued:
            yield queued
    except dbapi_error as exc:
        raise _wrapped(conn, exc, "pipeline", None) from exc


def driver_execute(conn: Connection, sql: str) -> None:
    """One literal statement (``BEGIN IMMEDIATE``) on the driver, errors wrapped as above."""
    _on_cursor(conn, sql, lambda cursor: cursor.execute(sql))


def in_transaction(conn: Connection) -> bool:
    """Whether the connection's driver connection is inside a transaction (begun on the driver,
    which SQLAlchemy's ``Connection.in_transaction`` does not see). SQLite only."""
    if conn.closed or conn.invalidated:
        return False
    return bool(getattr(conn.connection.dbapi_connection, "in_transaction", False))


def driver_commit(conn: Connection) -> None:
    """Commit the driver connection's transaction, errors wrapped as above."""
    _on_driver(conn, "COMMIT", "commit")


def driver_rollback(conn: Connection) -> None:
    _on_driver(conn, "ROLLBACK", "rollback")


def _on_driver(conn: Connection, sql: str, method: str) -> None:
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    try:
        getattr(dbapi_conn, method)()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, exc, sql, None) from exc


def _on_cursor(conn: Connection, sql: str, use: Callable[[Any], _T]) -> _T:
    """``use`` a fresh cursor of the connection's driver connection; a driver error raised as
    SQLAlchemy's. (A plain call: a generator context manager costs more than the statement.)"""
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    cursor = dbapi_conn.cursor()
    dbapi_error: type[Any] = conn.dialect.loaded_dbapi.Error
    try:
        return use(cursor)
    except dbapi_error as exc:
        raise _wrapped(conn, exc, sql, cursor) from exc
    finally:
        with suppress(dbapi_error):
            cursor.close()


def _wrapped(conn: Connection, exc: Any, sql: str, cursor: Any) -> sa.exc.StatementError:
    """A driver error as SQLAlchemy raises it; a disconnect invalidates as SQLAlchemy does:
    this connection is discarded and every other pooled one replaced (a server restart
    dropped them all)."""
    dialect = conn.dialect
    lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(exc)
        conn.engine.dispose()
    wrapped: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        sql, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
    )
    return wrapped


__all__ = [
    "DriverStatement",
    "driver_commit",
    "driver_execute",
    "driver_rollback",
    "in_transaction",
    "pipeline",
]
