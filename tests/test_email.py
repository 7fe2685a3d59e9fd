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
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from capture.db.models import ConsentEvent, Email, HeldPost, Job, Lead, utcnow
from capture.db.store import get_store
from capture.jobs.queue import DONE, FAILED, QUEUED
from capture.jobs.worker import Worker
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
    delivery, confirmation = sorted(sink.wait_for(2), key=lambda m: m["Subject"] != "Your copy of Leads versus prospects")
    assert delivery["Subject"] == "Your copy of Leads versus prospects"
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
