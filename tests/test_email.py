"""Email delivery and double opt-in, as people meet them: a form post, a worker that sends,
a real SMTP server on 127.0.0.1 (aiosmtpd) that reads what was sent, links clicked with the
test client, and the consent ledger afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select, update

from capture.db.models import ConsentEvent, Email, HeldPost, Job, Lead, utcnow
from capture.db.store import get_store
from capture.jobs.queue import DONE, FAILED, QUEUED
from capture.jobs.worker import Worker
from capture.mail.links import CONFIRM_SALT, sign_confirm, sign_unsubscribe
from capture.spam.verdict import judge, reason
from conftest import ROOT, SECRET_KEY, SITE_ORIGIN, write_resource
from mailsink import HOLD, Sink, running_sink

SENDER = "Example Marketing <hello@example.com>"
ADDRESS = "ann.lee@example.com"


@pytest.fixture
def sink() -> Iterator[Sink]:
    yield from running_sink()


@pytest.fixture
def mail_app(make_app: Callable[..., Flask], sink: Sink) -> Callable[..., Flask]:
    """An app that sends through the sink; keyword arguments change settings."""
    def build(**config: object) -> Flask:
        return make_app(**{"SMTP_URL": sink.url, "MAIL_FROM": SENDER, "EMAIL_DELIVERY": True,
                           "DOUBLE_OPT_IN": True, "POSTAL_ADDRESS": "1 Main Street, Springfield", **config})
    return build


def browser(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_ORIGIN"] = SITE_ORIGIN
    return client


def links(message: EmailMessage) -> list[str]:
    text = message.get_body(("plain",)).get_content()
    return re.findall(r"https?://\S+", text)


def path_of(url: str) -> str:
    return urlsplit(url).path


def rows(app: Flask, model, *where) -> list:
    with get_store(app).read() as s:
        return list(s.scalars(select(model).where(*where)))


def email_jobs(app: Flask) -> list[Job]:
    """The jobs that send emails (a worker also queues daily jobs of its own)."""
    return rows(app, Job, Job.kind == "email")


def ledger(app: Flask, email: str = ADDRESS) -> list[tuple[str, str]]:
    with get_store(app).read() as s:
        return [(e.event, e.method) for e in s.scalars(
            select(ConsentEvent).join(Lead, Lead.id == ConsentEvent.lead_id)
            .where(Lead.email == email, ConsentEvent.kind == "marketing").order_by(ConsentEvent.id))]


def test_a_post_with_both_on_gets_the_resource_and_a_confirmation_then_confirms_and_unsubscribes(
        mail_app, sink, form_post):
    app = mail_app()
    client = browser(app)
    answer = client.post("/submit", data=form_post(marketing_opt_in="yes"))
    assert answer.status_code == 303
    thanks = client.get(answer.headers["Location"])
    assert "a…@example.com" in thanks.get_data(as_text=True)
    assert "/download/" not in thanks.get_data(as_text=True)
    assert sink.received == []  # nothing is sent in the request

    assert Worker(app).run_pending() == 2
    assert sink.greetings == 1  # one connection, kept open from the first email to the second
    by_subject = {m["Subject"]: m for m in sink.wait_for(2)}
    delivery = by_subject["Your copy of Leads versus prospects"]
    confirmation = by_subject["Please confirm your subscription"]
    assert delivery["From"].addresses[0].addr_spec == "hello@example.com"
    assert delivery["To"].addresses[0].addr_spec == ADDRESS
    assert delivery["To"].addresses[0].display_name == "Ann Lee"
    for message in (delivery, confirmation):
        assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert re.fullmatch(r"<http://localhost/unsubscribe/[\w.-]+>", message["List-Unsubscribe"])
        assert message["List-Unsubscribe"][1:-1] in message.get_body(("plain",)).get_content()
        assert message["List-Unsubscribe"][1:-1] in message.get_body(("html",)).get_content()
        assert "1 Main Street, Springfield" in message.get_body(("plain",)).get_content()
        assert message["Message-ID"].endswith("@example.com>")
    html = delivery.get_body(("html",)).get_content()
    assert "Leads versus prospects" in html
    [download] = [url for url in links(delivery) if "/download/" in url]
    assert download in html
    pdf = client.get(path_of(download))
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    pdf.close()
    with get_store(app).read() as s:
        sent = {e.kind: e for e in s.scalars(select(Email))}
    assert {e.message_id for e in sent.values()} == {delivery["Message-ID"], confirmation["Message-ID"]}
    assert all(e.sent_at is not None for e in sent.values())
    assert sent["delivery"].subject == "Your copy of Leads versus prospects"

    # Double opt-in: the link shows a page (a scanner following it changes nothing), the button confirms.
    [confirm] = [url for url in links(confirmation) if "/confirm/" in url]
    page = client.get(path_of(confirm))
    assert page.status_code == 200 and "<form method=\"post\"" in page.get_data(as_text=True)
    assert ledger(app) == [("given", "form")]
    assert client.post(path_of(confirm)).status_code == 200
    again = client.post(path_of(confirm))
    assert again.status_code == 200 and "Subscription confirmed" in again.get_data(as_text=True)
    assert ledger(app) == [("given", "form"), ("confirmed", "confirmation_link")]
    [lead] = rows(app, Lead)
    assert lead.confirmed_at is not None

    # RFC 8058 one-click: a POST of List-Unsubscribe=One-Click, as a mail program sends it (no Origin).
    unsubscribe = path_of(delivery["List-Unsubscribe"][1:-1])
    mailer = app.test_client()
    for _ in range(2):
        done = mailer.post(unsubscribe, data={"List-Unsubscribe": "One-Click"},
                           content_type="multipart/form-data")
        assert done.status_code == 200 and "<html" not in done.get_data(as_text=True)
    assert ledger(app) == [("given", "form"), ("confirmed", "confirmation_link"), ("withdrawn", "one_click")]
    # The confirmation link after a withdrawal confirms nothing, and says so.
    late = client.post(path_of(confirm))
    assert late.status_code == 200 and "Nothing to confirm" in late.get_data(as_text=True)
    assert ledger(app)[-1] == ("withdrawn", "one_click")


def test_the_unsubscribe_page_shows_a_button_and_its_post_withdraws_once(mail_app, sink, form_post):
    app = mail_app(DOUBLE_OPT_IN=False)
    client = browser(app)
    client.post("/submit", data=form_post(marketing_opt_in="yes"))
    Worker(app).run_pending()
    [message] = sink.wait_for(1)
    [link] = [url for url in links(message) if "/unsubscribe/" in url]
    page = client.get(path_of(link))
    assert page.status_code == 200 and ">Unsubscribe</button>" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "private, no-store" and "noindex" in page.headers["X-Robots-Tag"]
    assert ledger(app) == [("given", "form")]  # following the link (a scanner) changes nothing
    for _ in range(2):
        done = client.post(path_of(link))
        assert done.status_code == 200 and "You are unsubscribed" in done.get_data(as_text=True)
    assert ledger(app) == [("given", "form"), ("withdrawn", "unsubscribe_page")]


def test_the_answer_to_the_page_script_names_the_masked_address_and_no_link(mail_app, sink, form_post):
    app = mail_app(DOUBLE_OPT_IN=False)
    client = browser(app)
    answer = client.post("/submit", data=form_post(), headers={"Accept": "application/json"})
    body = answer.get_json()
    assert answer.status_code == 201 and body["emailed_to"] == "a…@example.com"
    assert "download_url" not in body and "/download/" not in answer.get_data(as_text=True)
    thanks = client.get(path_of(body["thanks_url"]))
    assert thanks.status_code == 200 and "a…@example.com" in thanks.get_data(as_text=True)
    # The thank-you token is no download token: whoever posted must read the mailbox.
    assert client.get("/download/" + path_of(body["thanks_url"]).rsplit("/", 1)[1]).status_code == 404


def test_without_email_delivery_the_page_keeps_its_link_and_only_a_ticked_box_is_confirmed(
        mail_app, sink, form_post):
    app = mail_app(EMAIL_DELIVERY=False)
    client = browser(app)
    body = client.post("/submit", data=form_post(), headers={"Accept": "application/json"}).get_json()
    assert "download_url" in body and "emailed_to" not in body
    assert Worker(app).run_pending() == 0  # the box was not ticked: nothing to confirm
    client.post("/submit", data=form_post(marketing_opt_in="yes"))
    assert Worker(app).run_pending() == 1
    [confirmation] = sink.wait_for(1)
    assert confirmation["Subject"] == "Please confirm your subscription"
    [confirm] = [url for url in links(confirmation) if "/confirm/" in url]
    client.post(path_of(confirm))
    client.post("/submit", data=form_post(marketing_opt_in="yes"))
    assert Worker(app).run_pending() == 0  # confirmed already: not asked again
    assert len(sink.received) == 1


def test_a_refusal_for_now_is_retried_after_its_backoff(mail_app, sink, form_post):
    app = mail_app(DOUBLE_OPT_IN=False)
    sink.answers = ["451 4.3.0 Try again later"]
    browser(app).post("/submit", data=form_post())
    assert Worker(app).run_pending() == 1
    [job] = email_jobs(app)
    assert (job.state, job.attempts) == (QUEUED, 1) and "451" in job.last_error
    assert job.run_at > utcnow() + timedelta(seconds=20)  # the first backoff: 30 s
    assert Worker(app).run_pending() == 0 and sink.received == []
    with get_store(app).write() as s:  # the backoff has passed
        s.execute(update(Job).where(Job.kind == "email").values(run_at=utcnow() - timedelta(seconds=1)))
    assert Worker(app).run_pending() == 1
    [message] = sink.wait_for(1)
    [job] = email_jobs(app)
    [sent] = rows(app, Email)
    assert (job.state, job.attempts) == (DONE, 2) and sent.sent_at is not None
    assert message["Message-ID"] == sent.message_id


def test_a_recipient_refused_for_good_is_given_up_at_once(mail_app, sink, form_post):
    app = mail_app(DOUBLE_OPT_IN=False)
    sink.refused_rcpt[ADDRESS] = "550 5.1.1 No such user"
    browser(app).post("/submit", data=form_post())
    assert Worker(app).run_pending() == 1
    [job] = email_jobs(app)
    assert (job.state, job.attempts) == (FAILED, 1) and "550" in job.last_error
    assert rows(app, Email)[0].sent_at is None


def test_at_most_the_cap_of_emails_reach_one_address_in_a_day(mail_app, sink, form_post):
    app = mail_app(EMAILS_PER_ADDRESS_PER_DAY=2)
    client = browser(app)
    for spelling in ("ann.lee@example.com", "Ann.Lee@Example.com", "ann.lee@example.com"):
        assert client.post("/submit", data=form_post(email=spelling, marketing_opt_in="yes")).status_code == 303
    # The first post owes a delivery and a confirmation: the cap is reached; the others get nothing.
    assert sorted(e.kind for e in rows(app, Email)) == ["confirmation", "delivery"]
    browser(app).post("/submit", data=form_post(email="bo@example.com"))
    assert Worker(app).run_pending() == 3
    assert sorted(m["To"].addresses[0].addr_spec for m in sink.wait_for(3)) == [
        "ann.lee@example.com", "ann.lee@example.com", "bo@example.com"]


def test_one_confirmation_while_its_link_is_valid_so_the_cap_goes_to_resources(mail_app, sink, form_post):
    app = mail_app()  # the default cap: five
    client = browser(app)
    for _ in range(5):
        assert client.post("/submit", data=form_post(marketing_opt_in="yes")).status_code == 303
    # Four resources and one confirmation, not a confirmation with every post; the fifth
    # post is over the cap.
    assert sorted(e.kind for e in rows(app, Email)) == ["confirmation"] + ["delivery"] * 4
    assert Worker(app).run_pending() == 5
    assert len(sink.wait_for(5)) == 5


def test_an_email_is_never_sent_for_a_post_that_was_not_stored(mail_app, sink, form_post):
    app = mail_app()
    client = browser(app)
    assert client.post("/submit", data=form_post(email="not an address", marketing_opt_in="yes")).status_code == 422
    assert client.post("/submit", data=form_post(terms=None)).status_code == 422
    assert rows(app, Email) == [] and email_jobs(app) == []
    assert Worker(app).run_pending() == 0 and sink.received == []


def test_a_post_spooled_in_an_outage_gets_its_email_once_it_is_stored(mail_app, sink, form_post, tmp_path):
    down = mail_app(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:9/test", SPOOL_RETRY_SECONDS=0)
    assert browser(down).post("/submit", data=form_post()).status_code == 303  # spooled
    app = mail_app(DOUBLE_OPT_IN=False)
    assert rows(app, Email) == []
    from capture.spool import get_spool
    assert get_spool(app).replay().stored == 1
    assert get_spool(app).replay().stored == 0  # a replay again owes nothing more
    assert Worker(app).run_pending() == 1
    [message] = sink.wait_for(1)
    assert message["To"].addresses[0].addr_spec == ADDRESS


HONEYPOT = judge([reason("honeypot", "website=http://cheap-pills.example")])


def test_no_email_while_a_post_is_held_as_spam_and_it_goes_on_release(mail_app, sink, form_post):
    from staff import add_user

    app = mail_app(DOUBLE_OPT_IN=False)
    runner = app.test_cli_runner()
    assert browser(app).post("/submit", data=form_post(website="http://cheap-pills.example")).status_code == 303
    [held] = rows(app, HeldPost)
    assert rows(app, Email) == [] and Worker(app).run_pending() == 0
    assert add_user(runner, "sam@example.com", "sales").exit_code == 0
    released = runner.invoke(args=["spam", "release", str(held.id), "--by", "sam@example.com"])
    assert released.exit_code == 0, released.output
    assert Worker(app).run_pending() == 1
    [message] = sink.wait_for(1)
    [download] = [url for url in links(message) if "/download/" in url]
    pdf = browser(app).get(path_of(download))
    assert pdf.status_code == 200
    pdf.close()


def test_nothing_typed_or_written_in_content_reaches_a_header(mail_app, sink, content_dir, form_post):
    write_resource(content_dir, "evil", """
        id: evil
        title: "Evil guide\\r\\nBcc: victim@evil.example\\u2028X-Evil: yes"
        type: ebook
        summary: A title with line breaks.
        file: evil.pdf
    """, pdf="evil.pdf")
    app = mail_app()
    client = browser(app)
    # What the form lets through (a Unicode line separator), and what only a spool line or an
    # older row could hold (CR/LF), stored through the one write path a post takes.
    assert client.post("/submit", data=form_post(
        "evil", first_name="Ann\u2028Bcc: victim@evil.example", company="Acme\u2029X-Evil: yes",
        marketing_opt_in="yes")).status_code == 303
    from capture.catalog import get_catalog
    from capture.leads.submission import NewSubmission
    from capture.spool import get_spool
    with app.app_context():
        resource = get_catalog().get("evil")
        get_spool(app).save(NewSubmission(
            email="bo@example.com", resource_id="evil", terms=resource.terms,
            marketing=get_catalog().settings.marketing, marketing_opt_in=True,
            first_name="Bo\r\nBcc: victim@evil.example", last_name="Smith\nX-Evil: yes",
            company="Acme\r\n\r\nInjected body"))
    assert Worker(app).run_pending() == 4
    for message in sink.wait_for(4):
        assert set(message.keys()) <= {"From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
                                        "List-Unsubscribe-Post", "Auto-Submitted", "MIME-Version",
                                        "Content-Type", "X-Peer", "X-MailFrom", "X-RcptTo"}, message.keys()
        for name, value in message.items():
            assert "\n" not in value and "\r" not in value and "\u2028" not in value, (name, value)
        assert [a.addr_spec for a in message["To"].addresses] in (["ann.lee@example.com"], ["bo@example.com"])
        assert message["From"].addresses[0].addr_spec == "hello@example.com"
    assert sorted(rcpts for _, rcpts in sink.envelopes) == [["ann.lee@example.com"]] * 2 + [["bo@example.com"]] * 2
    subjects = {m["Subject"] for m in sink.received}
    assert "Your copy of Evil guide Bcc: victim@evil.example X-Evil: yes" in subjects


WORKER = "from capture import create_app; from capture.jobs.worker import Worker; Worker(create_app()).run()"


@pytest.mark.slow
def test_a_worker_killed_mid_send_is_replaced_and_every_copy_has_one_message_id(
        mail_app, sink, form_post, database_url, content_dir, tmp_path):
    app = mail_app(DOUBLE_OPT_IN=False, JOB_LEASE_SECONDS=2)
    browser(app).post("/submit", data=form_post())
    sink.answers = [HOLD]  # the server keeps the message, and keeps the worker waiting for its answer
    env = {**os.environ, "LEADGATE_TESTING": "true", "LEADGATE_SECRET_KEY": SECRET_KEY,
           "LEADGATE_DATABASE_URL": database_url, "LEADGATE_CONTENT_DIR": str(content_dir),
           "LEADGATE_BASE_URL": "http://localhost", "LEADGATE_SMTP_URL": sink.url, "LEADGATE_MAIL_FROM": SENDER,
           "LEADGATE_EMAIL_DELIVERY": "true", "LEADGATE_JOB_LEASE_SECONDS": "2",
           "LEADGATE_SPOOL_PATH": str(tmp_path / "worker-spool.jsonl"),
           "LEADGATE_INSTANCE_PATH": str(tmp_path / "worker-instance")}
    worker = subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert sink.holding.wait(30), "the worker never sent the message"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    [job] = email_jobs(app)
    [email] = rows(app, Email)
    assert job.state == "running" and email.sent_at is None  # died before it heard the server's answer
    sink.released.set()
    while utcnow() <= job.locked_until:  # the dead worker's lease runs out
        time.sleep(0.1)
    assert Worker(app).run_pending() == 1
    copies = sink.wait_for(2)
    assert {m["Message-ID"] for m in copies} == {email.message_id}
    [job] = email_jobs(app)
    [email] = rows(app, Email)
    assert (job.state, job.attempts) == (DONE, 2) and email.sent_at is not None


class _Old(TimestampSigner):
    """Signs as if eight days ago: a confirmation link past CONFIRM_MAX_AGE (7 days)."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 8 * 24 * 3600


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_links_that_are_not_valid_get_a_clear_page_or_json(mail_app, form_post):
    app = mail_app(DOUBLE_OPT_IN=False)
    client = browser(app)
    body = client.post("/submit", data=form_post(), headers={"Accept": "application/json"}).get_json()
    thanks_token = path_of(body["thanks_url"]).rsplit("/", 1)[1]
    expired = URLSafeTimedSerializer(SECRET_KEY, salt=CONFIRM_SALT, signer=_Old).dumps(1)
    cases = [("/confirm/not-a-token", 404, "Link not valid"), ("/unsubscribe/not-a-token", 404, "Link not valid"),
             # A token of one purpose is nothing to another (salts of their own).
             (f"/confirm/{sign_unsubscribe(SECRET_KEY, 1)}", 404, "Link not valid"),
             (f"/unsubscribe/{sign_confirm(SECRET_KEY, 1)}", 404, "Link not valid"),
             (f"/unsubscribe/{thanks_token}", 404, "Link not valid"),
             (f"/confirm/{expired}", 410, "Link expired")]
    for path, status, title in cases:
        for method in ("GET", "POST"):
            page = client.open(path, method=method)
            assert (page.status_code, page.mimetype) == (status, "text/html"), path
            assert title in page.get_data(as_text=True)
            answer = client.open(path, method=method, headers={"Accept": "application/json"})
            assert answer.status_code == status and answer.get_json()["title"] == title
    assert ledger(app) == [("declined", "form")]


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_marketer_overrides_a_template_in_content_and_the_footer_stays(mail_app, sink, form_post, content_dir):
    (content_dir / "leadgate.yml").write_text(
        "controller:\n  name: Example Marketing Ltd\n  email: privacy@example.com\n"
        "  address: 2 Side Road, Springfield\n", encoding="utf-8")
    emails = content_dir / "emails"
    emails.mkdir()
    (emails / "delivery.txt").write_text(
        '{% set subject = "Here it is: " ~ resource.title %}Hi {{ first_name }} from {{ company }}!\n'
        "{{ download_url }}\n", encoding="utf-8")
    app = mail_app(DOUBLE_OPT_IN=False, POSTAL_ADDRESS="")
    browser(app).post("/submit", data=form_post())
    Worker(app).run_pending()
    [message] = sink.wait_for(1)
    assert message["Subject"] == "Here it is: Leads versus prospects"
    text = message.get_body(("plain",)).get_content()
    assert text.startswith("Hi Ann from Acme Analytics!")
    # The override left the unsubscribe link out: the standard footer is added, with the
    # controller's postal address from content/leadgate.yml when POSTAL_ADDRESS is empty.
    assert message["List-Unsubscribe"][1:-1] in text and "2 Side Road, Springfield" in text
    assert "Unsubscribe" in message.get_body(("html",)).get_content()  # the built-in HTML part
