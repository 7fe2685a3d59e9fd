"""Engines for SQLite and PostgreSQL, with the settings each database gets on every connection.

SQLite, per connection: WAL (readers run beside the one writer; every process must be on the
same host, not a network filesystem), ``synchronous=NORMAL`` (a commit survives a crash of the
service but the last commits may be lost on power loss; ``FULL`` would cost an fsync per lead
while the HTTP layer, not the database, limits throughput — a lost lead on power failure is the
accepted price), ``busy_timeout`` (past it a write fails and the service spools the lead) and
foreign keys on. Write transactions start with ``BEGIN IMMEDIATE`` (see :func:`writing`) so
they take the write lock before their first read instead of failing with "database is locked"
when a read upgrades to a write.

PostgreSQL (psycopg 3): plain transactions from a small pool per process whose connections are
tested before use, so the first request after the server restarted gets a fresh connection
instead of an error.
"""

from __future__ import annotations

import sqlite3
from time import monotonic, sleep
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError

#: Milliseconds a SQLite write waits for the lock by default (the SQLITE_BUSY_TIMEOUT_MS setting).
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Seconds between tries to take SQLite's write lock (see begin_immediate).
SQLITE_LOCK_RETRY_SECONDS = 0.0002
#: WAL pages past which the committing connection checkpoints by itself: SQLite's own
#: checkpointing (1,000 pages by default), kept as a backstop far above what the
#: background checkpointer (capture.db.checkpoint) lets the WAL reach.
SQLITE_WAL_AUTOCHECKPOINT = 20_000

#: Per process. A sync gunicorn worker uses one connection at a time; the overflow serves
#: threads (tests, commands). A request waits at most pool_timeout for a connection and
#: connect_timeout for the server, well inside gunicorn's 30 s worker timeout.
POSTGRESQL_ENGINE: dict[str, Any] = {
    "pool_size": 5, "max_overflow": 5, "pool_timeout": 10, "pool_recycle": 1800,
    "pool_pre_ping": True,
    "connect_args": {"connect_timeout": 5, "application_name": "leadgate"},
}


def create_store_engine(url: str, *, foreign_keys: bool = True,
                        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    """An engine with the settings above; foreign keys off only to rebuild SQLite tables."""
    # Errors reach the log; the parameters of a failed statement (addresses, names) must not.
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, hide_parameters=True, **POSTGRESQL_ENGINE)
    engine = create_engine(url, hide_parameters=True)
    _configure_sqlite(engine, foreign_keys, busy_timeout_ms)
    return engine


def _use_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch the file to WAL once (it stays so); retry, since the switch ignores busy_timeout."""
    deadline = monotonic() + busy_timeout_ms / 1000
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or monotonic() > deadline:
                raise
            sleep(0.01)


def _configure_sqlite(engine: Engine, foreign_keys: bool, busy_timeout_ms: int) -> None:
    pragmas = (f"busy_timeout={int(busy_timeout_ms)}", "synchronous=NORMAL",
               f"foreign_keys={'ON' if foreign_keys else 'OFF'}",
               f"wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        # Take BEGIN away from the sqlite3 module so ours (below) is the only one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        _use_wal(cursor, busy_timeout_ms)
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("leadgate_begin") != "IMMEDIATE":
            connection.exec_driver_sql("BEGIN DEFERRED")
            return
        driver = connection.connection.driver_connection
        try:
            begin_immediate(driver, driver.cursor(), busy_timeout_ms)
        except sqlite3.Error as e:
            raise DBAPIError.instance("BEGIN IMMEDIATE", None, e, sqlite3.Error,
                                      hide_parameters=True, dialect=connection.dialect) from e


def writing(engine: Engine) -> Engine:
    """The same engine whose SQLite transactions take the write lock at BEGIN."""
    return engine.execution_options(leadgate_begin="IMMEDIATE")


def begin_immediate(driver: sqlite3.Connection, cursor: sqlite3.Cursor, busy_timeout_ms: int) -> None:
    """Take SQLite's write lock, trying again every 0.2 ms until the busy timeout.

    SQLite's own busy handler sleeps 1, 2, 5, 10… ms between tries, while the other worker
    holds the lock for a fraction of a millisecond (docs/performance.md has the figures). The
    statements inside the transaction never wait (WAL: readers do not block the writer), so
    the connection's busy timeout is back before the first of them.
    """
    driver.execute("PRAGMA busy_timeout=0")
    try:
        deadline = monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or monotonic() >= deadline:
                    raise
            sleep(SQLITE_LOCK_RETRY_SECONDS)
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")

