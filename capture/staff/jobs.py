"""The background jobs' page, ``/workspace/jobs``: counts per kind and state, the jobs waiting
for another attempt and when, the failed ones with their last error, and the recent emails
(sent or waiting). Every signed-in role may look (a marketer asks "was my email sent?"; every
role reads leads, addresses included); retrying a failed job is an admin's (capture.staff.roles.JOBS).
The same status is ``leadgate jobs status`` (capture.jobs.status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, url_for
from sqlalchemy import select

from capture.db.models import Email, Job
from capture.db.store import Store, get_store
from capture.jobs import queue
from capture.jobs.status import age, read_status
from capture.staff import auth, roles

bp = Blueprint("jobs", __name__, url_prefix="/workspace")

#: Emails listed on the page, newest first.
RECENT_EMAILS = 50


@dataclass(frozen=True)
class EmailLine:
    """An email as the page lists it: to whom, what, and whether it left."""

    id: int
    lead_id: int
    kind: str
    to_address: str
    created_at: datetime
    sent_at: datetime | None
    job_state: str | None
    attempts: int
    last_error: str


def recent_emails(store: Store, limit: int = RECENT_EMAILS) -> list[EmailLine]:
    emails, jobs = Email.__table__.c, Job.__table__.c
    query = (select(emails.id, emails.lead_id, emails.kind, emails.to_address, emails.created_at, emails.sent_at,
                    jobs.state, jobs.attempts, jobs.last_error)
             .select_from(Email.__table__.outerjoin(Job.__table__, jobs.id == emails.job_id))
             .order_by(emails.created_at.desc(), emails.id.desc()).limit(limit))
    with store.read() as s:
        return [EmailLine(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or 0, r[8] or "") for r in s.execute(query)]


@bp.get("/jobs", endpoint="jobs")
@auth.login_required
@roles.needs(roles.READ)
def jobs_page() -> Any:
    store = get_store()
    status = read_status(store)
    return render_template("workspace/jobs.html", title="Background jobs", section="jobs", status=status,
                           states=queue.STATES, age=age, emails=recent_emails(store),
                           may_retry=roles.may(auth.current_user(), roles.JOBS))


@bp.post("/jobs/<int:job_id>/retry")
@auth.login_required
@roles.needs(roles.JOBS)
def retry(job_id: int) -> Any:
    """Queue a failed job again now, its attempts counted afresh."""
    try:
        queue.retry(get_store(), job_id)
    except queue.NotFailed as e:
        flash(f"Nothing was queued: {e}")
    else:
        flash(f"Job {job_id} is queued again: a worker takes it within seconds.")
    return redirect(url_for(".jobs"), 303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
