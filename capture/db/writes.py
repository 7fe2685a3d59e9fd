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

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from capture.db.engine import begin_immediate

Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Writes(Protocol):
    def rows(self, statement: Executable, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run a statement with RETURNING; its rows."""

    def run(self, statement: Executable, parameters: Parameters) -> None:
        """Run a statement whose answer is not needed, once or for each mapping of a list."""


class CoreWrites:
    """SQLAlchemy's execution, on a Connection inside a transaction."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def rows(self, statement: Executable, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [dict(row) for row in self.connection.execute(statement, parameters).mappings()]

    def run(self, statement: Executable, parameters: Parameters) -> None:
        self.connection.execute(statement, parameters)


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
    def of(cls, statement: Any, dialect: Any, keys: tuple[str, ...]) -> _Compiled:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        names = tuple(compiled.positiontup if compiled.positional else compiled.binds)
        table = getattr(statement, "table", None)
        defaults = {}
        for name in names:
            if name in keys:
                continue
            column = table.c.get(name) if table is not None else None
            if column is None or column.default is None or not column.default.is_scalar:
                raise ValueError(f"no value for {name!r} in {compiled.string!r}")
            defaults[name] = column.default.arg
        converters = ((i, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                      for i, name in enumerate(names))
        returning = statement.exported_columns  # RETURNING's columns; none without it
        # itemgetter of one name gives the value itself, not a 1-tuple.
        pick = itemgetter(*names) if len(names) > 1 else (lambda values: (values[names[0]],))
        return cls(
            sql=compiled.string, names=names, positional=compiled.positional, pick=pick,
            to_driver=tuple((i, convert) for i, convert in converters if convert is not None),
            defaults=defaults, returns=tuple(column.key for column in returning),
            from_driver=tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                              for column in returning))

    def parameters(self, values: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        picked = list(self.pick({**self.defaults, **values} if self.defaults else values))
        for i, convert in self.to_driver:
            picked[i] = convert(picked[i])
        return picked if self.positional else dict(zip(self.names, picked))

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        return {name: value if convert is None else convert(value)
                for name, convert, value in zip(self.returns, self.from_driver, values)}


class DriverWrites:
    """Statements compiled once and run on the driver's cursor (see the module's docstring)."""

    def __init__(self, cursor: Any, dialect: Any, cache: dict[Any, _Compiled]):
        self.cursor = cursor
        self.dialect = dialect
        self.cache = cache

    def _compiled(self, statement: Executable, keys: tuple[str, ...]) -> _Compiled:
        compiled = self.cache.get((statement, keys))
        if compiled is None:
            compiled = self.cache[(statement, keys)] = _Compiled.of(statement, self.dialect, keys)
        return compiled

    def rows(self, statement: Executable, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled = self._compiled(statement, tuple(parameters))
        self.cursor.execute(compiled.sql, compiled.parameters(parameters))
        return [compiled.row(row) for row in self.cursor.fetchall()]

    def run(self, statement: Executable, parameters: Parameters) -> None:
        if isinstance(parameters, Mapping):
            compiled = self._compiled(statement, tuple(parameters))
            self.cursor.execute(compiled.sql, compiled.parameters(parameters))
            return
        compiled = self._compiled(statement, tuple(parameters[0]))
        self.cursor.executemany(compiled.sql, [compiled.parameters(values) for values in parameters])


@contextmanager
def driver_transaction(engine: Engine, cache: dict[Any, _Compiled],
                       busy_timeout_ms: int) -> Iterator[DriverWrites]:
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
    cursor = None
    try:
        cursor = driver.cursor()
        if dialect.name == "sqlite":
            begin_immediate(driver, cursor, busy_timeout_ms)
            yield DriverWrites(cursor, dialect, cache)
            driver.commit()
        else:
            with driver.pipeline():
                yield DriverWrites(cursor, dialect, cache)
                driver.commit()
    except error as e:
        gone = dialect.is_disconnect(e, pooled.dbapi_connection, cursor)
        if gone:
            pooled.invalidate(e)
        else:
            _rollback_quietly(driver)
        raise DBAPIError.instance(None, None, e, error, hide_parameters=True,
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
