"""A visitor in a real browser: headless Debian Chromium driven by Playwright, against `leadgate serve`."""

from __future__ import annotations

import os
import shutil

import pytest

from capture.store import Store
from live import LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network: no background fetches, no sandbox (CI runs as root).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError("Chromium is required on CI: .ci/run installs Debian's chromium package")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True)
    yield context.new_page()
    context.close()


def test_visitor_downloads_ebook_and_sales_sees_the_source(live_server, page):
    base = live_server.url
    page.goto(f"{base}/?utm_source=newsletter&utm_medium=email&utm_campaign=november")
    # The UTM fields were on the first page only; the form is two clicks away.
    page.get_by_role("link", name="Resources", exact=True).first.click()
    page.get_by_role("link", name="Telling leads from prospects").first.click()
    assert "utm_source" not in page.url

    page.get_by_label("Work email").fill("Ada.Lovelace@Example.COM")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Company", exact=True).fill("Analytical Engines")
    page.get_by_label("Company size (employees)").select_option("11-50")
    page.locator("input[name=terms]").check()
    page.locator("form[data-leadgate-form] button[type=submit]").click()

    link = page.locator("a[href*='/download/']")
    link.wait_for(timeout=15_000)
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "telling-leads-from-prospects.pdf"
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"

    rows = [r for r in live_server.export_rows() if r["email"] == "Ada.Lovelace@example.com"]
    assert len(rows) == 1
    row = rows[0]
    assert row["first_utm_source"] == "newsletter"
    assert row["first_utm_medium"] == "email"
    assert row["first_utm_campaign"] == "november"
    assert row["first_landing_page"].startswith(f"{base}/?utm_source=newsletter")
    assert row["resources"] == "telling-leads-from-prospects"
    assert row["marketing_opt_in"] == "no"

    store = Store(live_server.database_url)
    try:
        lead = store.find_lead("ada.lovelace@example.com")
        events = store.consent_events(lead.id)
    finally:
        store.dispose()
    terms = [e for e in events if e.kind == "terms"]
    assert len(terms) == 1 and terms[0].granted
    assert terms[0].version == row["terms_version"]
    assert len(terms[0].sha256) == 64
    assert [e.granted for e in events if e.kind == "marketing"] == [False]


def test_without_javascript_the_plain_form_still_delivers(live_server, browser):
    context = browser.new_context(java_script_enabled=False, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/resources/lead-scoring-sales-trusts/?utm_source=linkedin")
        page.get_by_label("Work email").fill("grace@example.org")
        page.locator("input[name=terms]").check()
        page.locator("input[name=marketing_opt_in]").check()
        page.locator("form[data-leadgate-form] button[type=submit]").click()
        page.wait_for_url("**/thanks/**")
        token = page.url.rsplit("/thanks/", 1)[1]
        with page.expect_download() as info:
            page.locator("a[href*='/download/']").first.click()
        assert info.value.suggested_filename == "lead-scoring-sales-trusts.pdf"
    finally:
        context.close()

    row = next(r for r in live_server.export_rows() if r["email"] == "grace@example.org")
    assert row["first_utm_source"] == "linkedin"  # recovered from the Referer
    assert row["marketing_opt_in"] == "yes"
    # The access log shows the thank-you page and the download, not the link that opens them.
    log = live_server.log()
    assert '"GET /thanks/… HTTP/1.1" 200' in log and '"GET /download/… HTTP/1.1" 200' in log
    assert token not in log


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("live")) as server:
        yield server
