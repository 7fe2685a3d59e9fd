"""Health checks for load balancers: ``/healthz`` (the process answers), ``/readyz`` (it can serve).

Ready means a visitor's post can be kept: the database has the schema this code needs, and the
database or the spool (the fallback, capture.spool) can take a write. A database that is down
or read-only while the spool can take the post is ready (posts wait in the spool and are
replayed); a full disk or a read-only instance folder under a failing database is not: every
post would get 503, so the balancer should send it elsewhere.
"""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from capture.db import migrate
from capture.db.store import get_store
from capture.spool import get_spool

bp = Blueprint("health", __name__)

#: Free space below which a disk is counted full: a spool line is a few kilobytes, but a
#: disk this close to full fails the next fsync'd write of any size soon.
MIN_FREE_BYTES = 1024 * 1024
#: A write that changes nothing, rolled back: fails on a read-only database or connection.
PROBE = "UPDATE alembic_version SET version_num = version_num"
#: What capture.db.migrate.problem says when the database does not answer at all.
UNREACHABLE = "database unreachable"


def database_write_problem(engine: Engine) -> str | None:
    """Why the database cannot take a write now, in an operator's words; None when it can."""
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                connection.exec_driver_sql(PROBE)
            finally:
                transaction.rollback()
    except SQLAlchemyError as e:
        current_app.logger.warning("database cannot take a write: %s", e)
        return "database cannot take a write"
    return None


def spool_write_problem(path: str) -> str | None:
    """Why the spool file cannot take a line now; None when it can. Opens it for appending
    (creating it empty when missing, as the first spooled post would) and writes nothing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as e:
        return f"spool cannot be written: {e.strerror}"
    try:
        stats = os.fstatvfs(fd)
    finally:
        os.close(fd)
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        return "spool cannot be written: the disk is full"
    return None


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; says nothing of the database (that is /readyz)."""
    return current_app.response_class("ok", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready for traffic: the schema is this code's, and a post can be kept somewhere."""
    engine = get_store().engine
    database = migrate.problem(engine)
    # A schema not this code's is a deployment to finish, whatever the spool could take.
    wrong_schema = database is not None and database != UNREACHABLE
    if database is None:
        database = database_write_problem(engine)
    spool = spool_write_problem(str(get_spool().file.path))
    ready = not wrong_schema and (database is None or spool is None)
    response = jsonify(ok=ready, database=database or "ok", spool=spool or "ok")
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
