"""The steps from the baseline to the service, to see where this machine stands.

Issue 3 gives, for scale, what each step cost on its author's 2-core machine: a bare Flask
form post under gunicorn near 5,000 req/s, about 67% of that with WTForms and email-validator,
about 45–50% with one SQLite insert as well. `benchmarks/run.py --ladder` measures the same
steps here, beside the baseline and the service:

- ``LADDER_STEP=wtforms``: the baseline plus the service's own form check
  (``capture.web.forms.check_submission``: the WTForms form and email-validator);
- ``LADDER_STEP=insert``: that, plus one SQLite INSERT of the checked post per request, in a
  file of its own (``LADDER_DATABASE``, made by :func:`create_database` before the server
  starts), with the service's SQLite settings (WAL, ``synchronous=NORMAL``, a busy timeout).

The service does more than the last step: a lead upsert, the submission, two consent texts
and two consent events in one transaction, the lead's update, a signed link.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from flask import Flask, Response, redirect, request

from capture.catalog import load_catalog
from capture.web.forms import check_submission

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("email", "resource_id", "first_name", "last_name", "company", "job_title",
           "utm_source", "utm_medium", "utm_campaign", "referrer", "landing_page")


def create_database(path: str) -> None:
    """The table of the insert step, in WAL mode: once, before two workers race to do it."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"CREATE TABLE posts (id INTEGER PRIMARY KEY, {', '.join(COLUMNS)}, created_at)")
    db.close()


def create_app() -> Flask:
    step = os.environ.get("LADDER_STEP", "wtforms")
    if step not in ("wtforms", "insert"):
        raise SystemExit(f"LADDER_STEP must be wtforms or insert, not {step!r}")
    catalog = load_catalog(ROOT / "content")
    database = os.environ.get("LADDER_DATABASE", "")
    if step == "insert" and not database:
        raise SystemExit("LADDER_STEP=insert needs LADDER_DATABASE, a SQLite file path")
    local = threading.local()
    insert = (f"INSERT INTO posts ({', '.join(COLUMNS)}, created_at) "
              f"VALUES ({', '.join('?' for _ in COLUMNS)}, datetime('now'))")

    def connection() -> sqlite3.Connection:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = sqlite3.connect(database, timeout=5)
            db.execute("PRAGMA synchronous=NORMAL")
        return db

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    @app.post("/submit")
    def submit() -> Response | tuple[str, int]:
        checked = check_submission(request.form, catalog)
        if not checked.ok:
            return "The form has mistakes.", 422
        if step == "insert":
            posted = {**checked.submission, "resource_id": checked.resource.id}
            with connection() as db:
                db.execute(insert, [posted[name] for name in COLUMNS])
        return redirect("/thanks/ladder", 303)

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    return app
