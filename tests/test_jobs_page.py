"""/workspace/jobs as staff use it: every role sees the counts, the retries waiting with their
next attempt, the failures with their error and attempts, and the recent emails; an admin
retries a failed job with the page's button, and nobody else can."""

from __future__ import annotations

import html
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, select

from capture.db.models import Email, Job, Lead, utcnow
from capture.jobs import queue, worker
from staff import CSRF_FIELD, signed_in

sqlite_only = pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)


def refused(context: worker.JobContext, payload: dict[str, Any]) -> None:
    raise ConnectionRefusedError("451 4.7.1 greylisted, try later")


def hopeless(context: worker.JobContext, payload: dict[str, Any]) -> None:
    raise queue.GiveUp("550 5.1.1 no such mailbox")


@pytest.fixture
def app(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(worker.HANDLERS, "test_refused", f"{__name__}:refused")
    monkeypatch.setitem(worker.HANDLERS, "test_hopeless", f"{__name__}:hopeless")
    return make_app(RETENTION_PURGE=False)


def jobs_made(app: Any, client: Any, form_post: Any) -> dict[str, int]:
    """A lead with a sent email and a waiting one, a job retried later and a failed one."""
    assert client.post("/submit", data=form_post()).status_code == 303
    store = worker.get_store(app)
    with store.read() as s:
        lead_id = s.execute(select(Lead.id)).scalar_one()
    with store.writes() as tx:
        waiting = queue.enqueue(tx, store.dialect, "email", {}, lead_id=lead_id)
        retried = queue.enqueue(tx, store.dialect, "test_refused", {}, max_attempts=5)
        failed = queue.enqueue(tx, store.dialect, "test_hopeless", {})
        for job_id, sent in ((None, utcnow()), (waiting, None)):
            tx.run(insert(Email.__table__), {
                "lead_id": lead_id, "job_id": job_id, "kind": "delivery", "to_address": "ann.lee@example.com",
                "resource_id": "leads-vs-prospects", "message_id": f"<{uuid.uuid4()}@example.com>",
                "subject": "", "created_at": utcnow(), "sent_at": sent})
    # Only the two test kinds run: the email job waits for the mail helper's handler.
    w = worker.Worker(app)
    for _ in range(2):
        job = queue.claim(store, w.name, w.lease, ("test_refused", "test_hopeless"))
        assert job is not None
        try:
            worker.handler(job.kind)(w.context, job.payload)
        except queue.GiveUp as e:
            queue.failed(store, job, w.name, str(e), give_up=True)
        except Exception as e:
            queue.failed(store, job, w.name, f"{type(e).__name__}: {e}")
    return {"waiting": waiting, "retried": retried, "failed": failed}


@sqlite_only
@pytest.mark.parametrize("role", ["sales", "marketing", "admin"])
def test_every_role_sees_counts_retries_failures_and_emails(app, client, runner, form_post, role):
    made = jobs_made(app, client, form_post)
    signed_in(client, runner, f"{role}@example.com", role)
    page = client.get("/workspace/jobs")
    assert page.status_code == 200
    text = html.unescape(page.get_data(as_text=True))
    assert 'aria-current="page">Jobs</a>' in text
    assert "<code>test_refused</code>" in text and "<code>email</code>" in text
    assert "Waiting to be tried again (1)" in text
    assert "ConnectionRefusedError: 451 4.7.1 greylisted, try later" in text and "1 of 5" in text
    assert "Failed (1)" in text and "550 5.1.1 no such mailbox" in text
    assert "ann.lee@" in text and "sent " in text and "waiting" in text
    assert f"number {made['waiting']} (<code>email</code>)" in text
    assert (f"/workspace/jobs/{made['failed']}/retry" in text) == (role == "admin")


def test_an_admin_retries_a_failed_job_from_the_page(app, client, runner, form_post):
    made = jobs_made(app, client, form_post)
    signed_in(client, runner, "ada.admin@example.com", "admin")
    token = CSRF_FIELD.search(client.get("/workspace/jobs").get_data(as_text=True)).group(1)
    answer = client.post(f"/workspace/jobs/{made['failed']}/retry", data={"csrf_token": token})
    assert (answer.status_code, answer.headers["Location"]) == (303, "/workspace/jobs")
    page = client.get("/workspace/jobs").get_data(as_text=True)
    assert f"Job {made['failed']} is queued again" in page and "Failed (0)" in page
    with worker.get_store(app).read() as s:
        row = s.execute(select(Job.state, Job.attempts).where(Job.id == made["failed"])).one()
    assert tuple(row) == ("queued", 0)
    # Twice: nothing more, and the page says why.
    client.post(f"/workspace/jobs/{made['failed']}/retry", data={"csrf_token": token})
    assert "is queued, not failed" in html.unescape(client.get("/workspace/jobs").get_data(as_text=True))
    # Without the page's CSRF token: refused.
    assert client.post(f"/workspace/jobs/{made['failed']}/retry").status_code == 400


@sqlite_only
def test_sales_cannot_retry(app, client, runner, form_post):
    made = jobs_made(app, client, form_post)
    signed_in(client, runner)
    token = CSRF_FIELD.search(client.get("/workspace/jobs").get_data(as_text=True)).group(1)
    answer = client.post(f"/workspace/jobs/{made['failed']}/retry", data={"csrf_token": token})
    assert answer.status_code == 403
    assert "only admin accounts retry failed jobs" in html.unescape(answer.get_data(as_text=True))
