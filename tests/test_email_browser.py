"""The page script with email delivery on, in a real browser against `leadgate serve`: the form
is answered with where the link was sent, never with the link; the email brings it."""

from __future__ import annotations

import re
import urllib.request

import pytest

from live import LiveServer
from mailsink import Sink, running_sink
from test_browser import (  # noqa: F401 (its fixtures)
    FORM_MIN_SECONDS,
    LAPTOP,
    PHONE,
    STAFF_PASSWORD,
    browser,
    page,
    screenshots,
)
from test_email_demo import Demo, links, mail_to, request_resource

ADMIN = "ada.admin@example.com"

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


@pytest.fixture(scope="module")
def demo_with_email(tmp_path_factory, sink: Sink):
    with Demo(tmp_path_factory.mktemp("email-demo-browser"), sink) as server:
        yield server


def test_the_pages_of_an_emails_links_and_the_leads_consent_look_right(demo_with_email, sink, browser, tmp_path):
    """Screenshots of what the person and staff see along the way (docs/screenshots/: run with
    LEADGATE_SCREENSHOT_DIR=docs/screenshots): the thank-you page with the link emailed, the
    confirmation and unsubscribe pages and their answers on a phone; the lead's consent evidence
    and rights, the erase page and the jobs on a laptop."""
    demo, shots = demo_with_email, screenshots(tmp_path)
    address = "ravi.shah@example.com"
    thanks = request_resource(demo, address, "Ravi", "Shah")
    confirmation = mail_to(sink, address, "Please confirm your subscription")
    [confirm] = [url for url in links(confirmation) if "/confirm/" in url]
    [unsubscribe] = [url for url in links(confirmation) if "/unsubscribe/" in url]
    demo.leadgate("user", "add", ADMIN, "--role", "admin", "--password-stdin", input=STAFF_PASSWORD + "\n")

    phone = browser.new_context(viewport=PHONE)
    page = phone.new_page()
    seen: dict[str, str] = {}
    try:
        for name, url, button in (("thanks", thanks, None), ("confirm", confirm, "Yes, subscribe me"),
                                  ("unsubscribe", unsubscribe, "Unsubscribe")):
            page.goto(url)
            seen[name] = page.locator("main h1").inner_text()
            page.screenshot(path=shots / f"{name}-emailed.png" if name == "thanks" else shots / f"{name}.png",
                            full_page=True)
            if button:
                page.get_by_role("button", name=button).click()
                page.wait_for_load_state()
                seen[f"{name}-done"] = page.locator("main h1").inner_text()
                page.screenshot(path=shots / f"{name}-done.png", full_page=True)
        sideways = page.evaluate("() => document.scrollingElement.scrollWidth > window.innerWidth")
    finally:
        phone.close()

    laptop = browser.new_context(viewport=LAPTOP)
    page = laptop.new_page()
    try:
        page.goto(f"{demo.url}/workspace/login")
        page.get_by_label("Email").fill(ADMIN)
        page.get_by_label("Password").fill(STAFF_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/workspace/")
        page.get_by_role("link", name="Ravi Shah").first.click()
        for summary in page.locator(".ws-evidence").locator("xpath=..").locator("summary").all():
            summary.click()
        evidence = page.locator("section[aria-labelledby=consent]").inner_text()
        # The side column: profile, the consent evidence opened, source, and the person's rights.
        page.locator(".ws-lead__side").screenshot(path=shots / "lead-consent.png")
        page.get_by_role("link", name="Erase this person…").click()
        page.screenshot(path=shots / "erase.png", full_page=True)
        page.goto(f"{demo.url}/workspace/jobs")
        jobs = page.locator("main").inner_text()
        page.screenshot(path=shots / "jobs.png", full_page=True)
    finally:
        laptop.close()

    assert seen == {"thanks": "Thank you", "confirm": "Confirm your subscription",
                    "confirm-done": "Subscription confirmed", "unsubscribe": "Unsubscribe",
                    "unsubscribe-done": "You are unsubscribed"}
    assert not sideways
    assert "Address confirmed" in evidence and "Withdrawn" in evidence
    for how in ("the box on the form", "the confirmation link in an email",
                "the unsubscribe link or page"):
        assert how in evidence
    assert jobs.count(address) == 2 and "No job has failed for good." in jobs
