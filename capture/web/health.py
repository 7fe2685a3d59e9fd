"""Health checks for load balancers: ``/healthz`` (the process answers), ``/readyz`` (it can serve)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify

from capture.db import migrate
from capture.db.store import get_store

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; says nothing of the database (that is /readyz)."""
    return current_app.response_class("ok", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready for traffic: the database answers and has the schema this code needs."""
    problem = migrate.problem(get_store().engine)
    if problem is not None:
        response = jsonify(ok=False, database=problem)
        response.status_code = 503
    else:
        response = jsonify(ok=True, database="ok")
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
