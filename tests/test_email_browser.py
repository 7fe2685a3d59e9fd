"""The page script with email delivery on, in a real browser against `leadgate serve`: the form
is answered with where the link was sent, never with the link; the email brings it."""

from __future__ import annotations

import re
import urllib.request

import pytest

from live import LiveServer
from mailsink import Sink, running_sink
from test_browser import FORM_MIN_SECONDS, browser, page  # noqa: F401 (its fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sink():
    yield from running_sink()


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory, sink: Sink):
    with LiveServer(tmp_path_factory.mktemp("live-mail"), settings={
            "LEADGATE_FORM_MIN_SECONDS": str(FORM_MIN_SECONDS), "LEADGATE_SMTP_URL": sink.url,
            "LEADGATE_MAIL_FROM": "Demo <demo@example.com>", "LEADGATE_EMAIL_DELIVERY": "true"}) as server:
        yield server


def test_the_page_script_says_where_the_link_was_sent_and_the_email_brings_it(mail_server, sink, page, tmp_path,
                                                                              monkeypatch):
    page.goto(f"{mail_server.url}/")
    page.get_by_role("link", name="Resources", exact=True).first.click()
    page.get_by_role("link", name="Telling leads from prospects").first.click()
    page.get_by_label("Work email").fill("ada@example.com")
    page.get_by_label("First name").fill("Ada")
    page.locator("input[name=terms]").check()
    page.wait_for_function("document.querySelector('input[name=form_token]').value !== ''")
    page.wait_for_timeout(FORM_MIN_SECONDS * 1000 + 200)
    page.locator("form[data-leadgate-form] button[type=submit]").click()

    success = page.locator(".leadgate-success")
    success.wait_for(timeout=15_000)
    text = success.inner_text()
    assert "Check your inbox" in text and "a…@example.com" in text
    assert page.locator(".leadgate-success a[href*='/download/']").count() == 0
    # The worker (leadgate worker, or the demo's) sends it; here one run of the test's own.
    from capture import create_app
    from capture.db.store import get_store
    from capture.jobs.worker import Worker
    from live import SECRET_KEY

    monkeypatch.setenv("LEADGATE_INSTANCE_PATH", str(tmp_path))
    app = create_app({"TESTING": True, "SPOOL_PATH": str(tmp_path / "spool.jsonl"), "SECRET_KEY": SECRET_KEY, "DATABASE_URL": mail_server.database_url,
                      "BASE_URL": mail_server.url, "SMTP_URL": sink.url, "MAIL_FROM": "Demo <demo@example.com>",
                      "EMAIL_DELIVERY": True, "CONTENT_DIR": str(mail_server.cwd / "content")})
    try:
        Worker(app).run_pending()
    finally:
        get_store(app).dispose()
    [message] = sink.wait_for(1)
    [link] = re.findall(r"https?://\S+/download/\S+", message.get_body(("plain",)).get_content())
    with urllib.request.urlopen(link) as answer:
        assert answer.read(5) == b"%PDF-"
