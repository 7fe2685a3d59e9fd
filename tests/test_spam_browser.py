"""The spam folder in a real browser: a rep reads why posts were held, releases one and deletes
another, on a laptop and a phone, in the light and the dark scheme; screenshots saved as the
other workspace pages' are (tests/test_browser.py).
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from test_browser import (
    LAPTOP,
    PHONE,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    browser,  # noqa: F401  (the module's Chromium, a fixture)
    low_contrast,
    screenshots,
    sign_in_as_rep,
)

from capture.catalog import load_catalog
from capture.db.models import utcnow
from capture.db.store import Store
from capture.leads.submission import NewSubmission
from capture.spam import folder
from capture.spam.verdict import judge, reason
from live import LiveServer

pytestmark = pytest.mark.browser

HELD = [
    ("bot@cheap-pills.example", [reason("honeypot", "website=http://cheap-pills.example/buy-now")], 0),
    ("fast.fingers@example.org", [reason("too_fast", "sent 0.6 s after the form was shown"),
                                  reason("no_origin")], 1),
    ("a-very-long-address-from-a-script.0123456789@mailinator-like-throwaway.example",
     [reason("disposable", "mailinator-like-throwaway.example is a throw-away domain")], 2),
    ("replayer@example.net", [reason("token_replayed"), reason("rate", "18 of 20 posts this minute")], 6),
]


@pytest.fixture(scope="module")
def spam_server(tmp_path_factory):
    """`leadgate serve` with a sales account and four held posts over the last week."""
    workdir = tmp_path_factory.mktemp("spam")
    (workdir / "site").mkdir()
    (workdir / "site" / "index.html").write_text("<!doctype html><title>Leadgate</title>\n")
    with LiveServer(workdir, build=False) as server:
        subprocess.run([server.leadgate, "user", "add", STAFF_EMAIL, "--role", "sales", "--password-stdin"],
                       input=STAFF_PASSWORD + "\n", env=server.env, cwd=server.cwd, text=True,
                       capture_output=True, check=True, timeout=60)
        catalog = load_catalog(Path(server.cwd) / "content")
        resource = next(iter(catalog))
        store = Store(server.database_url)
        try:
            for email, reasons, days_ago in HELD:
                folder.hold(store, NewSubmission(
                    email=email, resource_id=resource.id, terms=resource.terms,
                    marketing=catalog.settings.marketing, marketing_opt_in=False, spam=judge(reasons),
                    created_at=utcnow() - timedelta(days=days_ago, hours=1)))
        finally:
            store.dispose()
        yield server


def fits(page) -> dict[str, int]:
    return page.evaluate("() => ({page: document.scrollingElement.scrollWidth, window: window.innerWidth})")


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_rep_reads_why_posts_were_held_on_a_laptop_and_a_phone(spam_server, browser, viewport, tmp_path):  # noqa: F811
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    try:
        sign_in_as_rep(page, spam_server.url)
        page.locator(".ws-header").get_by_role("link", name="Spam").click()
        page.wait_for_url("**/workspace/spam")
        cards = page.locator(".spam-post")
        emails = [e.replace("\u200b", "") for e in cards.locator(".spam-post__who").all_inner_texts()]
        first_reasons = cards.nth(1).locator(".spam-reasons li").all_inner_texts()
        sizes = fits(page)
        suffix = "-phone" if viewport is PHONE else ""
        page.screenshot(path=screenshots(tmp_path) / f"workspace-spam{suffix}.png", full_page=True)
    finally:
        context.close()
    assert [e.replace("\n", "") for e in emails] == [email for email, _, _ in HELD]
    assert "Too fast" in first_reasons[0] and "sent 0.6 s after the form was shown" in first_reasons[0]
    assert "No origin" in first_reasons[1]
    assert sizes["page"] <= sizes["window"], sizes


def test_release_and_delete_with_the_buttons(spam_server, browser):  # noqa: F811
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    try:
        sign_in_as_rep(page, spam_server.url)
        page.goto(f"{spam_server.url}/workspace/spam")
        card = page.locator(".spam-post", has_text="fast.fingers@")
        card.get_by_role("button", name="Release as a lead").click()
        page.wait_for_url("**/workspace/spam")
        released = page.locator(".ws-notice").inner_text()

        card = page.locator(".spam-post", has_text="replayer@")
        delete = card.get_by_role("button", name="Delete for good")
        assert not delete.is_visible()        # asked first
        card.locator("summary", has_text="Delete…").click()
        delete.click()
        page.wait_for_url("**/workspace/spam")
        deleted = page.locator(".ws-notice").inner_text()
        left = page.locator(".spam-post").count()
        page.goto(f"{spam_server.url}/workspace/")
        in_list = page.locator("main").inner_text()
    finally:
        context.close()
    assert released == "fast.fingers@example.org was released: it is a lead now."
    assert deleted == "The post from replayer@example.net was deleted."
    assert left == 2
    assert "fast.fingers@example.org" in in_list.replace("\u200b", "")
    rows = spam_server.export_rows()
    assert [r["email"] for r in rows] == ["fast.fingers@example.org"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_spam_folder_meets_wcag_aa_contrast(spam_server, browser, scheme):  # noqa: F811
    context = browser.new_context(viewport=LAPTOP, color_scheme=scheme)
    page = context.new_page()
    try:
        sign_in_as_rep(page, spam_server.url)
        page.goto(f"{spam_server.url}/workspace/spam")
        page.get_by_text("Posts held per day").click()
        page.locator(".spam-confirm summary").first.click()
        failures = low_contrast(f"{scheme}, spam folder", page.locator(".ws-header"), page.locator("main"))
        page.locator(".ws-button--danger").first.hover()
        failures += low_contrast(f"{scheme}, delete under the pointer", page.locator(".spam-confirm form").first)
    finally:
        context.close()
    if failures:
        pytest.fail("text below WCAG AA contrast:\n" + "\n".join(failures), pytrace=False)
