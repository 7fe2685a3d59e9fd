"""One write transaction, run through SQLAlchemy or straight on the driver's cursor.

Both classes take the same Core statements and the same parameters (a mapping, or a list of
mappings for many rows), and give RETURNING rows as dicts: code written against
:class:`Writes` runs through either, so a write added to a transaction needs nothing more.

- :class:`CoreWrites` is SQLAlchemy's own execution on a Connection.
- :class:`DriverWrites` compiles each statement once per set of parameter names (SQLAlchemy
  writes the SQL, the column types convert the values, as the ORM would) and runs it on the
  driver's cursor. It exists for the write every visitor causes: SQLAlchemy's execution
  context per statement cost more than the database took to run it, and on PostgreSQL the
  statements whose answers are not needed go out in psycopg's pipeline without waiting
  (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

from sqlalchemy import Connection, Delete, Engine, Float, Insert, Select, Update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import Executable
from sqlalchemy.util import LRUCache

from capture.db.engine import begin_immediate

Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Writes(Protocol):
    def rows(self, statement: Executable, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run a statement with RETURNING; its rows."""

    def run(self, statement: Executable, parameters: Parameters) -> None:
        """Run a statement whose answer is not needed, once or for each mapping of a list."""

    def rows_together(self, *statements: tuple[Executable, Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        """Run statements with RETURNING in order, sent together where the driver can (one
        round trip in PostgreSQL's pipeline); the rows of each."""


class CoreWrites:
    """SQLAlchemy's execution, on a Connection inside a transaction."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def rows(self, statement: Executable, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [dict(row) for row in self.connection.execute(statement, parameters).mappings()]

    def run(self, statement: Executable, parameters: Parameters) -> None:
        if isinstance(parameters, Mapping) or parameters:  # no rows: nothing to write
            self.connection.execute(statement, parameters)

    def rows_together(self, *statements: tuple[Executable, Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        return [self.rows(statement, parameters) for statement, parameters in statements]


@dataclass(frozen=True)
class _Compiled:
    """A statement's SQL for one dialect and one set of parameter names, and its conversions."""

    sql: str
    #: Bind names in the driver's order (positional paramstyles) or as its keys (named ones).
    names: tuple[str, ...]
    positional: bool
    #: The bind values in that order, from a mapping in one call.
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    #: (position, converter) of the values a column type converts for the driver.
    to_driver: tuple[tuple[int, Callable[[Any], Any]], ...]
    #: Values for binds the caller leaves out: the columns' Python-side scalar defaults.
    defaults: Mapping[str, Any]
    returns: tuple[str, ...]
    from_driver: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def of(cls, statement: Any, dialect: Any, keys: frozenset[str]) -> _Compiled:
        if not isinstance(statement, (Insert, Update, Delete, Select)):
            raise TypeError(f"DriverWrites runs Core INSERT, UPDATE, DELETE and SELECT, not {statement!r}")
        compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
        if "__[POSTCOMPILE_" in compiled.string:
            raise TypeError("DriverWrites cannot run an expanding IN (…): use CoreWrites for it")
        names = tuple(compiled.positiontup if compiled.positional else compiled.binds)
        table = getattr(statement, "table", None)
        defaults = {}
        for name in names:
            if name in keys:
                continue
            bind, column = compiled.binds[name], table.c.get(name) if table is not None else None
            if bind.value is not None or bind.callable is not None:  # a literal in the statement
                defaults[name] = bind.effective_value
            elif column is not None and column.default is not None and column.default.is_scalar:
                defaults[name] = column.default.arg
            else:
                raise ValueError(f"no value for {name!r} in {compiled.string!r}")
        converters = ((i, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                      for i, name in enumerate(names))
        returning = statement.exported_columns  # RETURNING's columns; none without it
        # itemgetter of one name gives the value itself, not a 1-tuple; of none, nothing.
        pick = (itemgetter(*names) if len(names) > 1 else
                (lambda values: (values[names[0]],)) if names else (lambda values: ()))
        return cls(
            sql=compiled.string, names=names, positional=compiled.positional, pick=pick,
            to_driver=tuple((i, convert) for i, convert in converters if convert is not None),
            defaults=defaults, returns=tuple(column.key for column in returning),
            from_driver=tuple(_result_processor(column.type, dialect) for column in returning))

    def parameters(self, values: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        picked = list(self.pick({**self.defaults, **values} if self.defaults else values))
        for i, convert in self.to_driver:
            picked[i] = convert(picked[i])
        return picked if self.positional else dict(zip(self.names, picked))

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        return {name: value if convert is None else convert(value)
                for name, convert, value in zip(self.returns, self.from_driver, values)}


def _result_processor(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """A column type's conversion of what the driver returns. A float column (Float, double
    precision) needs none: the drivers return Python floats, and SQLAlchemy's PostgreSQL
    dialect would ask for the column's type code, which is not known before the query runs."""
    if isinstance(type_, Float):
        return None
    return type_.dialect_impl(dialect).result_processor(dialect, None)


def compiled_cache() -> LRUCache:
    """Where DriverWrites keeps compiled statements, by statement and parameter names: the
    statements are meant to be built once (module level), so the cache stays small; a statement
    built per call only costs a compile, and never grows the cache past its size."""
    return LRUCache(500)


class DriverWrites:
    """Core statements compiled once and run on the driver's cursor: INSERT, UPDATE, DELETE
    and SELECT, with values as parameters or literals in the statement (see the module's
    docstring). A problem with a value is raised as SQLAlchemy's StatementError, as through
    SQLAlchemy."""

    def __init__(self, cursor: Any, dialect: Any, cache: LRUCache):
        self.cursor = cursor
        self.dialect = dialect
        self.cache = cache
        #: The statement running, named in the error if the database refuses it.
        self.sql: str | None = None

    def _prepared(self, statement: Executable,
                  rows: Sequence[Mapping[str, Any]]) -> tuple[_Compiled, list[Any]]:
        """The statement compiled for these parameter names, and each row's driver values."""
        keys = frozenset(rows[0])
        self.sql = None
        try:
            compiled = self.cache.get((statement, keys))
            if compiled is None:
                compiled = self.cache[(statement, keys)] = _Compiled.of(statement, self.dialect, keys)
            self.sql = compiled.sql
            return compiled, [compiled.parameters(values) for values in rows]
        except (ValueError, TypeError, KeyError) as e:
            raise StatementError(str(e), self.sql, None, e) from e

    def rows(self, statement: Executable, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled, [values] = self._prepared(statement, [parameters])
        self.cursor.execute(compiled.sql, values)
        return [compiled.row(row) for row in self.cursor.fetchall()]

    def run(self, statement: Executable, parameters: Parameters) -> None:
        if isinstance(parameters, Mapping):
            compiled, [values] = self._prepared(statement, [parameters])
            self.cursor.execute(compiled.sql, values)
        elif parameters:
            compiled, many = self._prepared(statement, parameters)
            self.cursor.executemany(compiled.sql, many)

    def rows_together(self, *statements: tuple[Executable, Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        if self.dialect.name != "postgresql":  # nothing to gain where every statement is local
            return [self.rows(statement, parameters) for statement, parameters in statements]
        sent = []
        for statement, parameters in statements:
            compiled, [values] = self._prepared(statement, [parameters])
            cursor = self.cursor.connection.cursor()  # its own: the answers are read after all are sent
            cursor.execute(compiled.sql, values)
            sent.append((compiled, cursor))
        return [[compiled.row(row) for row in cursor.fetchall()] for compiled, cursor in sent]


@contextmanager
def driver_transaction(engine: Engine, cache: LRUCache, busy_timeout_ms: int) -> Iterator[DriverWrites]:
    """One transaction on a pooled connection's driver: committed on success, rolled back on
    any error. Driver errors are raised as SQLAlchemy's (what callers catch), without their
    parameters, and a connection the server dropped is left out of the pool."""
    dialect = engine.dialect
    error = dialect.loaded_dbapi.Error
    try:
        pooled = engine.raw_connection()
    except error as e:  # could not connect
        raise DBAPIError.instance(None, None, e, error, hide_parameters=True, dialect=dialect) from e
    driver = pooled.driver_connection
    cursor = writes = None
    try:
        cursor = driver.cursor()
        writes = DriverWrites(cursor, dialect, cache)
        if dialect.name == "sqlite":
            begin_immediate(driver, cursor, busy_timeout_ms)
            yield writes
            driver.commit()
        else:
            with driver.pipeline():
                yield writes
                driver.commit()
    except error as e:
        gone = dialect.is_disconnect(e, pooled.dbapi_connection, cursor)
        if gone:
            pooled.invalidate(e)
        else:
            _rollback_quietly(driver)
        raise DBAPIError.instance(writes.sql if writes else None, None, e, error, hide_parameters=True,
                                  connection_invalidated=gone, dialect=dialect) from e
    except BaseException:
        _rollback_quietly(driver)
        raise
    finally:
        pooled.close()


def _rollback_quietly(driver: Any) -> None:
    """Roll back after a failure, which may have taken the connection with it."""
    try:
        driver.rollback()
    except Exception:  # noqa: BLE001 - the first error is the one to report
        pass
