"""The database of one app: :class:`Store` owns the engine and hands out sessions and transactions.

Every query of the service goes through a Store (the domain modules take one: capture.leads,
capture.staff). The engine is created on first use, never at import or in ``create_app``, so
no connection is opened before a server forks its workers. On SQLite each process starts a
:class:`~capture.db.checkpoint.Checkpointer` at its first write.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from capture.db.checkpoint import Checkpointer
from capture.db.engine import SQLITE_BUSY_TIMEOUT_MS, create_store_engine, writing
from capture.db.writes import CoreWrites, Writes, compiled_cache, driver_transaction

EXTENSION = "leadgate.store"


class AlreadyExists(Exception):
    """An insert that would break a unique rule; the message names the value."""


class Store:
    """The database of one app: engine, sessions and transactions."""

    def __init__(self, url: str, *, sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS):
        self.url = url
        self.sqlite_busy_timeout_ms = sqlite_busy_timeout_ms
        self._made: tuple[Engine, Engine, sessionmaker[Session], sessionmaker[Session]] | None = None
        #: DriverWrites' compiled statements, shared by this store's transactions.
        self._compiled = compiled_cache()
        self._lock = threading.Lock()
        self._checkpointer: Checkpointer | None = None

    def _connected(self) -> tuple[Engine, Engine, sessionmaker[Session], sessionmaker[Session]]:
        """The engine, the same engine for writing, and session factories for reading and
        writing, made on first use: after any fork."""
        if self._made is None:
            with self._lock:
                if self._made is None:
                    engine = create_store_engine(self.url, busy_timeout_ms=self.sqlite_busy_timeout_ms)
                    write_engine = writing(engine)
                    self._made = (engine, write_engine, sessionmaker(engine, expire_on_commit=False),
                                  sessionmaker(write_engine, expire_on_commit=False))
        return self._made

    @property
    def engine(self) -> Engine:
        return self._connected()[0]

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection (at shutdown, and between tests)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._made is not None:
            self._made[0].dispose()
            self._made = None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; closed (and its transaction ended) on exit."""
        with self._connected()[2]() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction in an ORM session: committed on success, rolled back on any
        exception. On SQLite it holds the write lock from its start."""
        with self._connected()[3].begin() as session:
            yield session
        self._written()

    @contextmanager
    def writes(self, *, direct: bool = True) -> Iterator[Writes]:
        """One write transaction of Core statements (no ORM unit of work): committed on
        success, rolled back on any exception. ``direct`` runs them on the driver's cursor
        (:class:`~capture.db.writes.DriverWrites`), else through SQLAlchemy's execution."""
        if direct:
            with driver_transaction(self.engine, self._compiled, self.sqlite_busy_timeout_ms) as writes:
                yield writes
        else:
            with self._connected()[1].begin() as connection:
                yield CoreWrites(connection)
        self._written()

    def _written(self) -> None:
        """A write was committed: on SQLite, have this process's checkpointer copy the WAL
        soon. Started at the first write of a process (a thread does not cross a fork)."""
        if self.dialect != "sqlite":
            return
        checkpointer = self._checkpointer
        if checkpointer is None or checkpointer.pid != os.getpid():
            with self._lock:
                if self._checkpointer is None or self._checkpointer.pid != os.getpid():
                    self._checkpointer = Checkpointer(self.engine)
                    self._checkpointer.start()
                checkpointer = self._checkpointer
        checkpointer.nudge()


def get_store(app: Flask | None = None) -> Store:
    """The store of the given app, or of the current one."""
    return (app or current_app).extensions[EXTENSION]


def init_app(app: Flask) -> None:
    """Give the app its Store; nothing connects until the first query."""
    app.extensions[EXTENSION] = Store(app.config["DATABASE_URL"],
                                      sqlite_busy_timeout_ms=app.config["SQLITE_BUSY_TIMEOUT_MS"])
