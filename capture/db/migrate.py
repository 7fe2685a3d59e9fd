"""The schema's history: Alembic migrations in ``capture/db/migrations``, run without an alembic.ini.

``leadgate db upgrade``, and ``leadgate serve`` before it starts its workers, bring a database to
the newest revision. An upgrade is one transaction that holds a lock, so servers starting
together queue: the first migrates, the others then find nothing to do. SQLite takes its write
lock (``BEGIN IMMEDIATE``), PostgreSQL an advisory lock; both roll a failed upgrade back whole,
table changes included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from capture.db.engine import create_store_engine, writing

MIGRATIONS = Path(__file__).with_name("migrations")
#: The PostgreSQL advisory lock an upgrade holds: "leadgate" read as a 64-bit number.
LOCK_KEY = int.from_bytes(b"leadgate", "big")

log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's settings, made in code; env.py runs the migrations on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def migrating(url: str) -> Iterator[Connection]:
    """A connection in one transaction that holds the upgrade lock until it commits."""
    engine = create_store_engine(url, foreign_keys=False)
    try:
        with writing(engine).connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
            yield connection
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to a revision, the newest by default; once there, this does nothing."""
    with migrating(url) as connection:
        command.upgrade(alembic_config(connection), revision)


@cache
def head() -> str:
    """The revision this version of Leadgate needs (read once per process)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    """The database's revision; None before its first upgrade."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def problem(engine: Engine) -> str | None:
    """Why the service cannot use this database, in an operator's words; None when it can."""
    try:
        revision = current(engine)
    except SQLAlchemyError as e:
        log.warning("database unreachable: %s", e)
        return "database unreachable"
    if revision == head():
        return None
    if revision is None:
        return "database has no tables yet: run `leadgate db upgrade`"
    return f"database schema is at revision {revision}; this version of Leadgate needs {head()}"
